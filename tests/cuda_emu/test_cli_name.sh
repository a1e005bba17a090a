#!/usr/bin/env bash
# The emulated backend never passes for the real one: every output of a run
# on `--device cuda` in the cuda-emu build names it "cuda-emu".
# usage: test_cli_name.sh DLAB_GPU
set -u
exe=$1
fail=0
check() { # description, condition status
    if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
json=$("$exe" --task factorise --device cuda --epochs 20 --json 2>/dev/null)
check "factorise --json exits 0" $?
backend=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
[ "$backend" = cuda-emu ]
check "JSON backend is cuda-emu (got '$backend')" $?
text=$("$exe" --task mlp --device cuda --epochs 5 2>&1)
check "mlp text report exits 0" $?
line=$(printf '%s\n' "$text" | grep -m1 -E '^ *backend ')
printf '%s\n' "$line" | grep -qE '^ *backend +cuda-emu \(sm_[0-9]+ emulated on the CPU, [0-9]+ SMs, [0-9.]+ GiB, device [0-9]+\)$' &&
  [ "$(printf '%s\n' "$line" | grep -o 'cuda-emu' | wc -l)" -eq 1 ]
check "text report names cuda-emu once and the device as emulated ($line)" $?
version=$("$exe" --version)
printf '%s\n' "$version" | grep -q "CUDA backend emulated on the CPU" &&
  ! printf '%s\n' "$version" | grep -q "built in"
check "--version says the CUDA backend is emulated ($version)" $?
printf '%s\n' "$text$json" | grep -qwE 'backend[": ]+cuda([^-]|$)'
[ $? -ne 0 ]
check "no output calls the backend plain cuda" $?
if [ $fail -eq 0 ]; then echo "cuda_emu_cli: 5 passed, 0 failed"; else echo "cuda_emu_cli: failures"; fi
exit $fail
