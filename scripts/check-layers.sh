#!/bin/sh
# The layering the build enforces (docs/architecture.md):
#
#   scripts/check-layers.sh "RUNTIME_LAYERS" "OFFLINE_LAYERS" RUNTIME_LIB OFFLINE_LIB \
#                           ["SERVER_LAYERS" SERVER_LIB]
#
# A layer is a list of src/ folders joined by ':' (folders of one layer are peers); layers are
# given lowest first, the offline layers above the runtime ones, the server's above those. It
# fails when
#   1. a file in src/F includes a header of src/G where G's layer is above F's, or G is a peer
#      of F (peers never include each other), or G is in no layer at all;
#   2. a folder of src/ is in no layer (a new folder must be placed);
#   3. the runtime library references a symbol that the offline library defines;
#   4. a server folder includes a header of any other src/ folder: the server is written on
#      include/pinfer.h alone;
#   5. the runtime or the offline library references a symbol the server library defines, or
#      one of libmicrohttpd (MHD_*) or jansson (json_*); the server library references a symbol
#      the offline library defines.
# Prints each violation and a one-line summary.
set -u
RUNTIME=$1; OFFLINE=$2; RTLIB=$3; OFFLIB=$4; SERVER=${5:-}; SRVLIB=${6:-}
cd "$(dirname "$0")/.." || exit 2

# level of each folder: "folder level" lines
levels=$(
    n=0
    for layer in $RUNTIME $OFFLINE $SERVER; do
        n=$((n + 1))
        for d in $(echo "$layer" | tr ':' ' '); do echo "$d $n"; done
    done
)
level_of() { echo "$levels" | awk -v d="$1" '$1 == d { print $2; found = 1 } END { if (!found) print 0 }'; }

bad=0
for dir in src/*/; do
    d=$(basename "$dir")
    if [ "$(level_of "$d")" = 0 ]; then
        echo "check-layers: src/$d/ is in no layer (add it to LAYERS_RUNTIME or LAYERS_OFFLINE in the Makefile and to docs/architecture.md)"
        bad=$((bad + 1))
    fi
done

# every quoted include of the form "folder/file.h" in src/
viol=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_0-9]*/' src/*/*.c src/*/*.h |
    sed 's|^src/\([a-z_0-9]*\)/\([^:]*\):\([0-9]*\):.*"\([a-z_0-9]*\)/.*|\1 \2 \3 \4|' |
    while read -r from file line to; do
        [ "$from" = "$to" ] && continue
        case " $(echo "$SERVER" | tr ':' ' ') " in *" $from "*)
            echo "src/$from/$file:$line includes $to/: the server uses include/pinfer.h only"; continue ;;
        esac
        lf=$(level_of "$from"); lt=$(level_of "$to")
        if [ "$lt" = 0 ]; then
            echo "src/$from/$file:$line includes $to/, a folder in no layer"
        elif [ "$lt" -gt "$lf" ]; then
            echo "src/$from/$file:$line includes $to/, a higher layer ($to is layer $lt, $from is layer $lf)"
        elif [ "$lt" -eq "$lf" ]; then
            echo "src/$from/$file:$line includes $to/, a peer in the same layer (peers never include each other)"
        fi
    done)
if [ -n "$viol" ]; then
    echo "$viol" | sed 's/^/check-layers: /'
    bad=$((bad + $(echo "$viol" | wc -l)))
fi

# the runtime library must not need the offline one
if [ -f "$RTLIB" ] && [ -f "$OFFLIB" ]; then
    tmp=$(mktemp -d) || exit 2
    nm -u "$RTLIB" 2>/dev/null | awk '{ print $NF }' | sort -u > "$tmp/need"
    nm --defined-only "$OFFLIB" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' | sort -u > "$tmp/have"
    both=$(comm -12 "$tmp/need" "$tmp/have")
    rm -rf "$tmp"
    for s in $both; do
        echo "check-layers: $RTLIB references $s, which the offline library defines"
        bad=$((bad + 1))
    done
else
    echo "check-layers: $RTLIB or $OFFLIB missing"
    bad=$((bad + 1))
fi

# the server library: nothing below it needs it, it needs nothing offline
if [ -n "$SRVLIB" ]; then
    if [ -f "$SRVLIB" ] && [ -f "$RTLIB" ] && [ -f "$OFFLIB" ]; then
        tmp=$(mktemp -d) || exit 2
        nm --defined-only "$SRVLIB" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' | sort -u > "$tmp/srv"
        nm --defined-only "$OFFLIB" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' | sort -u > "$tmp/off"
        for lib in "$RTLIB" "$OFFLIB"; do
            nm -u "$lib" 2>/dev/null | awk '{ print $NF }' | sort -u > "$tmp/need"
            for s in $(comm -12 "$tmp/need" "$tmp/srv") $(grep -E '^(MHD_|json_)' "$tmp/need"); do
                echo "check-layers: $lib references $s, which is the server's (or libmicrohttpd's, jansson's)"
                bad=$((bad + 1))
            done
        done
        nm -u "$SRVLIB" 2>/dev/null | awk '{ print $NF }' | sort -u > "$tmp/need"
        for s in $(comm -12 "$tmp/need" "$tmp/off"); do
            echo "check-layers: $SRVLIB references $s, which the offline library defines"
            bad=$((bad + 1))
        done
        rm -rf "$tmp"
    else
        echo "check-layers: $SRVLIB missing"
        bad=$((bad + 1))
    fi
fi

if [ "$bad" -gt 0 ]; then
    echo "check-layers: $bad violation(s)"
    exit 1
fi
echo "check-layers: ok (no include against the layers, the runtime library needs nothing offline${SRVLIB:+, the server only the public API})"
