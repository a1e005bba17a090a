# Working across processes and GPUs: MPI when it is found (DLAB_HAVE_MPI),
# NCCL beside the CUDA backend when the toolkit ships it (DLAB_HAVE_NCCL).
# Included from the top-level CMakeLists.txt once the `dlab` library exists.
# Without either, the communicator is a single rank and everything builds
# and runs as before.

option(DLAB_MPI "Run across processes with MPI when it is found" ON)
option(DLAB_NCCL "Use NCCL between GPUs when the CUDA toolkit ships it" ON)

target_sources(dlab PRIVATE host/dist/comm.c host/dist/comm_share.c host/tasks/tsqr.c)

set(DLAB_HAVE_MPI OFF)
if(DLAB_MPI)
  find_package(MPI COMPONENTS C)
  if(MPI_C_FOUND)
    set(DLAB_HAVE_MPI ON)
    # PRIVATE: only host/dist/comm*.c include mpi.h; executables still link
    # libmpi through the static library's link interface.
    target_link_libraries(dlab PRIVATE MPI::MPI_C)
    target_compile_definitions(dlab PUBLIC DLAB_HAVE_MPI=1)
    message(STATUS "dlab: MPI ${MPI_C_VERSION} (${MPIEXEC_EXECUTABLE})")
  else()
    message(STATUS "dlab: no MPI (install libopenmpi-dev); runs are single-process")
  endif()
endif()

set(DLAB_HAVE_NCCL OFF)
if(DLAB_CUDA AND DLAB_NCCL)
  find_path(DLAB_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(DLAB_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(DLAB_NCCL_INCLUDE_DIR AND DLAB_NCCL_LIBRARY)
    set(DLAB_HAVE_NCCL ON)
    target_sources(dlab PRIVATE host/dist/nccl.c kernels/dist.cu)
    target_include_directories(dlab PRIVATE host/dist ${DLAB_NCCL_INCLUDE_DIR})
    target_link_libraries(dlab PUBLIC ${DLAB_NCCL_LIBRARY})
    target_compile_definitions(dlab PUBLIC DLAB_HAVE_NCCL=1)
    message(STATUS "dlab: NCCL ${DLAB_NCCL_LIBRARY}")
  else()
    message(STATUS "dlab: no NCCL beside the CUDA toolkit; GPUs of several ranks cannot talk")
  endif()
elseif(DLAB_CUDA_EMU AND DLAB_NCCL AND DLAB_HAVE_MPI)
  # The emulator stands MPI in for NCCL (tests/cuda_emu/src/nccl.cpp), so
  # the NCCL code runs, under NCCL's names, on the CPU (docs/CUDA_EMU.md).
  set(DLAB_HAVE_NCCL ON)
  target_sources(dl_cuda_emu PRIVATE ${DL_EMU_DIR}/src/nccl.cpp)
  target_link_libraries(dl_cuda_emu PRIVATE MPI::MPI_C)
  set_property(SOURCE host/dist/nccl.c APPEND PROPERTY COMPILE_OPTIONS
               -include ${DL_EMU_DIR}/include/dl_emu_host.h)
  set_property(SOURCE host/dist/nccl.c APPEND PROPERTY COMPILE_DEFINITIONS DL_EMU_NCCL=1)
  target_sources(dlab PRIVATE host/dist/nccl.c)
  dl_cuda_emu_kernels(dlab kernels/dist.cu)
  target_include_directories(dlab PRIVATE host/dist)
  target_compile_definitions(dlab PUBLIC DLAB_HAVE_NCCL=1)
  message(STATUS "dlab: NCCL stood in for by MPI on the emulator")
endif()
