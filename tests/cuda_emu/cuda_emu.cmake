# The cuda-emu build (DLAB_CUDA_EMU=ON): the CUDA backend's host code and the
# kernels in kernels/ run on the CPU against the emulation layer in this
# folder instead of libcudart, cuBLAS and cuSOLVER (docs/CUDA_EMU.md).
# Included from the top-level CMakeLists.txt; needs the toolkit's headers and
# its libcurand (no nvcc, no GPU), OpenBLAS and LAPACKE.
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
find_package(CUDAToolkit REQUIRED)
if(NOT BLAS_FOUND OR NOT LAPACKE_FOUND)
  message(FATAL_ERROR "cuda-emu: the emulated cuBLAS and cuSOLVER need OpenBLAS and LAPACKE "
                      "(scripts/setup.sh installs them)")
endif()

set(DL_EMU_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(dl_cuda_emu STATIC
  ${DL_EMU_DIR}/src/runtime.cpp ${DL_EMU_DIR}/src/exec.cpp ${DL_EMU_DIR}/src/blas.cpp
  ${DL_EMU_DIR}/src/solver.cpp ${DL_EMU_DIR}/src/rand.cpp)
target_include_directories(dl_cuda_emu PUBLIC ${DL_EMU_DIR}/include ${CUDAToolkit_INCLUDE_DIRS}
                           PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_compile_definitions(dl_cuda_emu PRIVATE DL_EMU_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_compile_options(dl_cuda_emu PRIVATE -Wall -Wextra -Wno-unused-parameter)
target_link_libraries(dl_cuda_emu PUBLIC ${BLAS_LIBRARIES} PkgConfig::LAPACKE CUDA::curand)

# dl_cuda_emu_kernels(<target> <cu files>): each file, its launches
# rewritten, compiled into <target> as C++ with the emulator's prelude.
function(dl_cuda_emu_kernels target)
  foreach(cu ${ARGN})
    get_filename_component(name ${cu} NAME)
    get_filename_component(abs ${cu} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    set(out ${CMAKE_BINARY_DIR}/cuda_emu_kernels/${name}.cpp)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DIN=${abs} -DOUT=${out} -P ${DL_EMU_DIR}/rewrite_launches.cmake
      DEPENDS ${abs} ${DL_EMU_DIR}/rewrite_launches.cmake
      COMMENT "cuda-emu: rewriting the launches of ${cu}" VERBATIM)
    # No contraction of a*b+c into fma: the host compiler must not pick an
    # order of rounding of its own (nvcc contracts; see docs/CUDA_EMU.md).
    set_property(SOURCE ${out} APPEND PROPERTY COMPILE_OPTIONS
                 -include ${DL_EMU_DIR}/include/dl_emu_kernel.h -ffp-contract=off -Wall)
    set_property(SOURCE ${out} APPEND PROPERTY COMPILE_DEFINITIONS DLAB_CUDA_EMU=1)
    target_sources(${target} PRIVATE ${out})
  endforeach()
endfunction()

# dl_cuda_emu_attach(<target> HOST <c files> KERNELS <cu files>): builds the
# CUDA backend's host files against the real toolkit headers with the
# emulator's call-site header forced in, and each kernel file, its launches
# rewritten, as C++ with the emulator's prelude; links the emulator.
function(dl_cuda_emu_attach target)
  cmake_parse_arguments(ARG "" "" "HOST;KERNELS" ${ARGN})
  foreach(src ${ARG_HOST})
    set_property(SOURCE ${src} APPEND PROPERTY COMPILE_OPTIONS
                 -include ${DL_EMU_DIR}/include/dl_emu_host.h)
  endforeach()
  target_sources(${target} PRIVATE ${ARG_HOST} ${DL_EMU_DIR}/src/backend_name.c)
  dl_cuda_emu_kernels(${target} ${ARG_KERNELS})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/kernels
                             ${PROJECT_SOURCE_DIR}/host/backends)
  target_link_libraries(${target} PUBLIC dl_cuda_emu)
  target_compile_definitions(${target} PUBLIC DLAB_HAVE_CUDA=1)
endfunction()
