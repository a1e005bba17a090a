# Working across processes and GPUs: MPI when it is found (DLAB_HAVE_MPI),
# NCCL beside the CUDA backend when the toolkit ships it (DLAB_HAVE_NCCL).
# Included from the top-level CMakeLists.txt once the `dlab` library exists.
# Without either, the communicator is a single rank and everything builds
# and runs as before.

option(DLAB_MPI "Run across processes with MPI when it is found" ON)

target_sources(dlab PRIVATE host/dist/comm.c host/tasks/tsqr.c)

set(DLAB_HAVE_MPI OFF)
if(DLAB_MPI)
  find_package(MPI COMPONENTS C)
  if(MPI_C_FOUND)
    set(DLAB_HAVE_MPI ON)
    # PRIVATE: only host/dist/comm.c includes mpi.h; executables still link
    # libmpi through the static library's link interface.
    target_link_libraries(dlab PRIVATE MPI::MPI_C)
    target_compile_definitions(dlab PUBLIC DLAB_HAVE_MPI=1)
    message(STATUS "dlab: MPI ${MPI_C_VERSION} (${MPIEXEC_EXECUTABLE})")
  else()
    message(STATUS "dlab: no MPI (install libopenmpi-dev); runs are single-process")
  endif()
endif()
