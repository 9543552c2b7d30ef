/*
 * h_iofunc_custom: compiled, not run (tests/c/run.sh, with t_iofunc): a
 * QNX-style resource manager that extends the OCB and the attribute
 * structure by defining IOFUNC_OCB_T / IOFUNC_ATTR_T before including
 * <sys/iofunc.h>, as QNX allows. It must compile without a warning as
 * strict ISO C11 (-pedantic) and as C++.
 */
struct my_ocb;
struct my_attr;
#define IOFUNC_OCB_T struct my_ocb
#define IOFUNC_ATTR_T struct my_attr
#include <sys/iofunc.h>
#include <qnxcompat.h>

struct my_attr {
    iofunc_attr_t attr; /* first, as QNX requires */
    int           extra;
};

struct my_ocb {
    iofunc_ocb_t ocb; /* first, as QNX requires */
    int          mine;
};

static int my_lock(resmgr_context_t *ctp, io_lock_t *msg, struct my_ocb *ocb)
{
    /* A handler that does its own bookkeeping, then the default. */
    ocb->mine++;
    return iofunc_lock_default(ctp, msg, &ocb->ocb);
}

static int my_close_dup(resmgr_context_t *ctp, io_close_t *msg, struct my_ocb *ocb)
{
    return iofunc_close_dup_default(ctp, msg, &ocb->ocb);
}

int h_iofunc_custom_init(resmgr_io_funcs_t *io, resmgr_connect_funcs_t *cf);
int h_iofunc_custom_init(resmgr_io_funcs_t *io, resmgr_connect_funcs_t *cf)
{
    iofunc_func_init(_RESMGR_CONNECT_NFUNCS, cf, _RESMGR_IO_NFUNCS, io);
    io->lock = my_lock;
    io->close_dup = my_close_dup;
    struct _pulse p;
    p.code = _PULSE_CODE_UNBLOCK;
    p.value.sival_int = 1;
    return p.value.sival_int == 1 && EOK == 0 && _IO_LOCK == 0x10F &&
           (_IO_COMBINE_FLAG & 0x8000) && F_FLOCK != 0 &&
           _RESMGR_NPARTS(1) == -1 && _RESMGR_NOREPLY != 0;
}
