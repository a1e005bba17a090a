# Turns a kernels/*.cu file into the C++ the cuda-emu build compiles:
# every `kernel<<<config>>>(args)` becomes `DL_EMU_LAUNCH(kernel, config)(args)`
# (include/dl_emu_kernel.h defines it), on the same line, and a #line
# directive keeps diagnostics and __FILE__ pointing at the original file.
# A launch written in a form this does not understand (say, a configuration
# spread over several lines) stops the build rather than going unemulated.
#
# usage: cmake -DIN=kernels/x.cu -DOUT=build/x.cu.cpp -P rewrite_launches.cmake
file(READ "${IN}" text)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*)[ \t]*<<<([^<>;\n]*)>>>" "DL_EMU_LAUNCH(\\1, \\2)"
       out "${text}")
if(out MATCHES "<<<|>>>")
  message(FATAL_ERROR "${IN}: a kernel launch the cuda-emu rewrite does not understand; write "
                      "it as name<<<grid, block, shmem, stream>>>(args) with the configuration "
                      "on one line")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${out}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
