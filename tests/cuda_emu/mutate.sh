#!/usr/bin/env bash
# Mutation tests of the cuda-emu build: each patch in mutations/ plants a
# bug of a kind the emulator exists to catch (a missing barrier, an
# out-of-bounds write, a wrong cuBLAS leading dimension). The tree is copied,
# built with the cuda-emu configuration and its emulated CUDA suites run:
# unmutated they must pass, and with each patch applied (one at a time) they
# must fail. The patches stay out of the real tree; nothing in the code
# switches them on.
#
# usage: mutate.sh SOURCE_DIR WORK_DIR [extra cmake arguments]
set -u
src=$1 work=$2
shift 2
tree=$work/src build=$work/build
suites=(test_fused_ops test_ops test_factorise test_mlp)
failures=0 passes=0

rm -rf "$work" && mkdir -p "$tree" || exit 1
# The copy: the sources, without build trees or version control.
(cd "$src" && tar cf - --exclude='./build*' --exclude='./.git' --exclude='./out*' .) |
    (cd "$tree" && tar xf -) || { echo "mutate: cannot copy $src" >&2; exit 1; }
if ! cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDLAB_CUDA=OFF -DDLAB_CUDA_EMU=ON \
    -DDLAB_PLPLOT=OFF "$@" >"$work/configure.log" 2>&1; then
    echo "mutate: the copy does not configure (see $work/configure.log)" >&2
    exit 1
fi

build() {
    cmake --build "$build" -j"$(nproc)" --target "${suites[@]}" >"$work/build-$1.log" 2>&1
}

# Runs the first N emulated suites (default: all), stopping at the first
# that fails; prints that suite and the first line saying why.
run_suites() {
    local t rc why
    for t in "${suites[@]:0:${2:-${#suites[@]}}}"; do
        timeout 600 "$build/tests/$t" --backend cuda >"$work/$1-$t.log" 2>&1
        rc=$?
        if ((rc != 0)); then
            # The emulator's own finding first, else the suite's first failed check.
            why=$(grep -m1 -E '^cuda-emu: error|ERROR: AddressSanitizer' "$work/$1-$t.log" ||
                grep -m1 -E '^FAIL' "$work/$1-$t.log")
            echo "$t exited $rc: ${why:-see $work/$1-$t.log}"
            return 1
        fi
    done
    return 0
}

verdict() { # ok, description
    if (($1)); then
        echo "ok   $2"
        passes=$((passes + 1))
    else
        echo "FAIL $2"
        failures=$((failures + 1))
    fi
}

if ! build unmutated; then
    verdict 0 "the unmutated copy builds (see $work/build-unmutated.log)"
    echo "cuda_emu_mutations: $passes passed, $failures failed"
    exit 1
fi
# The mutants first: each is caught by some suite, and the unmutated copy
# must then pass every suite up to the last one that caught a mutant (the
# later suites run unmutated in the cuda-emu ctest itself).
needed=0
for patch in "$src"/tests/cuda_emu/mutations/*.patch; do
    name=$(basename "$patch" .patch)
    if ! patch -p1 --forward --fuzz=3 -d "$tree" <"$patch" >"$work/patch-$name.log" 2>&1; then
        verdict 0 "$name: the patch applies (see $work/patch-$name.log; refresh it)"
        continue
    fi
    if build "$name"; then
        out=$(run_suites "$name")
        rc=$?
        verdict $((rc != 0)) "$name: the emulated suites fail${out:+ ($out)}"
        for i in "${!suites[@]}"; do
            [[ $out == "${suites[i]} "* ]] && ((i + 1 > needed)) && needed=$((i + 1))
        done
    else
        verdict 0 "$name: the mutant builds (see $work/build-$name.log)"
    fi
    patch -p1 -R --fuzz=3 -d "$tree" <"$patch" >>"$work/patch-$name.log" 2>&1 ||
        { echo "mutate: cannot take $name back out" >&2; exit 1; }
done
((needed > 0)) || needed=${#suites[@]}
if build unmutated-again; then
    out=$(run_suites unmutated "$needed")
    verdict $((! $?)) "the unmutated copy passes ${suites[*]:0:$needed}${out:+ ($out)}"
else
    verdict 0 "the unmutated copy builds again (see $work/build-unmutated-again.log)"
fi
echo "cuda_emu_mutations: $passes passed, $failures failed"
((failures == 0))
