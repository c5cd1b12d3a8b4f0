# pinfer build. Three static libraries, one CLI (tools/), one program per test (tests/test_*.c):
#   libpinfer.a          the runtime: src/ folders of the runtime layers (docs/architecture.md)
#   libpinfer_offline.a  the offline tools (synth, profile, prepare); the runtime never links it
#   libpinfer_server.a   pinfer serve (src/server/): on the public API only; the only code that
#                        links libmicrohttpd and jansson (of the libraries; the CLI's planner
#                        files use jansson too)
#   make                 build build/pinfer
#   make check-layers    fail when a file includes a header from a higher layer, or the runtime
#                        library references an offline symbol (scripts/check-layers.sh)
#   make test            build and run every test (prints "N passed, N failed, N skipped")
#   make SAN=1 test      same under ASan+UBSan, in build-san/
#   make fuzz            libFuzzer targets (clang), in build-fuzz/; make fuzz-smoke / fuzz-long
#                        run them (scripts/fuzz.sh)
CC      ?= cc
SAN     ?= 0
BUILD   ?= $(if $(filter 1,$(SAN)),build-san,build)
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Werror
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -Isrc -pthread -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lm -luring -lpcre2-8 -pthread
SRV_LDLIBS := -lmicrohttpd -ljansson
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

# Each ISA's kernels are compiled with their own flags and picked at start-up by CPUID.
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16

# The layers, lowest first (docs/architecture.md); scripts/check-layers.sh reads these lines.
LAYERS_RUNTIME := core tensor:io gguf tokenizer:sample:chat model cache ffn runtime
LAYERS_OFFLINE := synth:profile:prepare:plan
# above the runtime, beside the offline layer, on include/pinfer.h alone
LAYERS_SERVER := server
OFFLINE_DIRS := $(subst :, ,$(LAYERS_OFFLINE))
SERVER_DIRS := $(subst :, ,$(LAYERS_SERVER))
OFF_SRC  := $(sort $(foreach d,$(OFFLINE_DIRS),$(wildcard src/$(d)/*.c)))
SRV_SRC  := $(sort $(foreach d,$(SERVER_DIRS),$(wildcard src/$(d)/*.c)))
LIB_SRC  := $(filter-out $(OFF_SRC) $(SRV_SRC),$(sort $(wildcard src/*/*.c)))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
OFF_OBJ  := $(OFF_SRC:%.c=$(BUILD)/%.o)
SRV_OBJ  := $(SRV_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libpinfer.a
OFFLIB   := $(BUILD)/libpinfer_offline.a
SRVLIB   := $(BUILD)/libpinfer_server.a

all: $(BUILD)/pinfer

$(BUILD)/%_avx2.o:   CFLAGS += $(AVX2_FLAGS)
$(BUILD)/%_avx512.o: CFLAGS += $(AVX512_FLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(OFFLIB): $(OFF_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SRVLIB): $(SRV_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pinfer: $(TOOL_OBJ) $(SRVLIB) $(OFFLIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SRV_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(SRVLIB) $(OFFLIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SRV_LDLIBS)

$(BUILD)/tests/testutil.o: tests/testutil.c

test: check-layers $(BUILD)/pinfer $(TESTS)
	@BUILD=$(BUILD) tests/run.sh $(TESTS)

check-layers: $(LIB) $(OFFLIB) $(SRVLIB)
	@sh scripts/check-layers.sh "$(LAYERS_RUNTIME)" "$(LAYERS_OFFLINE)" $(LIB) $(OFFLIB) "$(LAYERS_SERVER)" $(SRVLIB)

# libFuzzer targets (fuzz/): the GGUF reader, the tokenizer, the whole model load, a prepared
# model's keys and tensors, the server's request parser. scripts/fuzz.sh makes their seeds and
# runs them (smoke or long).
FUZZ_TARGETS := fuzz_gguf fuzz_tokenizer fuzz_model fuzz_prepared fuzz_request
FUZZ_CC      := clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -fsanitize=fuzzer,address,undefined

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang SAN=0 OPT="-O1" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libpinfer.a build-fuzz/libpinfer_server.a
	@mkdir -p build-fuzz/fuzz
	$(FUZZ_CC) fuzz/fuzz_gguf.c build-fuzz/libpinfer.a $(LDLIBS) -o build-fuzz/fuzz/fuzz_gguf
	$(FUZZ_CC) fuzz/fuzz_tokenizer.c build-fuzz/libpinfer.a $(LDLIBS) -o build-fuzz/fuzz/fuzz_tokenizer
	$(FUZZ_CC) fuzz/fuzz_model.c build-fuzz/libpinfer.a $(LDLIBS) -o build-fuzz/fuzz/fuzz_model
	$(FUZZ_CC) -DFUZZ_PREPARED fuzz/fuzz_model.c build-fuzz/libpinfer.a $(LDLIBS) -o build-fuzz/fuzz/fuzz_prepared
	$(FUZZ_CC) fuzz/fuzz_request.c build-fuzz/libpinfer_server.a build-fuzz/libpinfer.a $(LDLIBS) -ljansson -o build-fuzz/fuzz/fuzz_request

# every target on its seeds and for a few seconds (CI), or for SECONDS of CPU each (default 3600)
fuzz-smoke:
	@sh scripts/fuzz.sh smoke
fuzz-long:
	@sh scripts/fuzz.sh long $(SECONDS)

clean:
	rm -rf build build-san build-fuzz

.PHONY: all test check-layers fuzz fuzz-smoke fuzz-long clean
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(OFF_OBJ:.o=.d) $(SRV_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TESTS:=.d) $(BUILD)/tests/testutil.d
