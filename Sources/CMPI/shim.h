#ifndef FKP_CMPI_SHIM_H
#define FKP_CMPI_SHIM_H
#include <mpi.h>

// OpenMPI's predefined handles are macros that take the address of global
// structs; Swift cannot import them, but it imports (and inlines) these.
static inline MPI_Comm fkp_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm fkp_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Datatype fkp_type_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype fkp_type_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype fkp_type_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype fkp_type_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype fkp_type_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype fkp_type_char(void) { return MPI_CHAR; }
static inline MPI_Op fkp_op_sum(void) { return MPI_SUM; }
static inline MPI_Op fkp_op_max(void) { return MPI_MAX; }
static inline MPI_Op fkp_op_min(void) { return MPI_MIN; }
static inline void *fkp_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *fkp_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler fkp_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request fkp_request_null(void) { return MPI_REQUEST_NULL; }
static inline int fkp_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info fkp_info_null(void) { return MPI_INFO_NULL; }
static inline int fkp_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int fkp_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
#endif
