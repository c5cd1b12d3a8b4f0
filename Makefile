# pinfer build. One static library (src/*/), one CLI (tools/), one program per test (tests/test_*.c).
#   make                 build build/pinfer
#   make test            build and run every test (prints "N passed, N failed, N skipped")
#   make SAN=1 test      same under ASan+UBSan, in build-san/
#   make fuzz            libFuzzer target for the GGUF reader (clang), in build-fuzz/
CC      ?= cc
SAN     ?= 0
BUILD   ?= $(if $(filter 1,$(SAN)),build-san,build)
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Werror
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -Isrc -pthread -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lm -luring -pthread
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

# Each ISA's kernels are compiled with their own flags and picked at start-up by CPUID.
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16

LIB_SRC  := $(sort $(wildcard src/*/*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libpinfer.a

all: $(BUILD)/pinfer

$(BUILD)/%_avx2.o:   CFLAGS += $(AVX2_FLAGS)
$(BUILD)/%_avx512.o: CFLAGS += $(AVX512_FLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pinfer: $(TOOL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/testutil.o: tests/testutil.c

test: $(BUILD)/pinfer $(TESTS)
	@BUILD=$(BUILD) tests/run.sh $(TESTS)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang SAN=0 OPT="-O1" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libpinfer.a
	@mkdir -p build-fuzz/fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
	  fuzz/fuzz_gguf.c build-fuzz/libpinfer.a -lm -luring -pthread -o build-fuzz/fuzz/fuzz_gguf
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
	  fuzz/fuzz_tokenizer.c build-fuzz/libpinfer.a -lm -luring -pthread -o build-fuzz/fuzz/fuzz_tokenizer
	@echo "run: build-fuzz/fuzz/fuzz_gguf -max_total_time=600 build-fuzz/corpus fuzz/corpus"

clean:
	rm -rf build build-san build-fuzz

.PHONY: all test fuzz clean
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TESTS:=.d)
