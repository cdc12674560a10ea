/*
 * vfd.c - a read-only HDF5 virtual file driver over an h5m_read_fn, and
 * the library-wide libhdf5 lock.
 *
 * libhdf5 hands the driver absolute file addresses (it adds the base
 * address itself), so reads go straight to the callback.  The end of file
 * is the size the caller gave.  Like the sec2 driver, bytes past the end of
 * file read as zeros (libhdf5 does read past EOF in a few places, e.g. the
 * superblock search of a short file); a callback error fails the read and
 * is remembered in h5m_vfd_info.err so split can return it.
 *
 * Layout of H5FD_class_t follows libhdf5 1.10 (H5FDpublic.h, 1.10.8).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "h5m_int.h"
#include "log.h"

#if H5_VERS_MAJOR != 1 || H5_VERS_MINOR != 10
#error "vfd.c is written against the libhdf5 1.10 driver API"
#endif

/* The only mutable globals of hdf5map: libhdf5 serial is one process-wide
 * library, so its lock and our driver's registration are process-wide. */
static pthread_mutex_t h5m_lib_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t h5m_vfd_once = PTHREAD_ONCE_INIT;
static hid_t h5m_vfd_driver = -1; /* written once under h5m_vfd_once */

void h5m_hdf5_lock(void)
{
	pthread_mutex_lock(&h5m_lib_mutex);
}

void h5m_hdf5_unlock(void)
{
	pthread_mutex_unlock(&h5m_lib_mutex);
}

struct h5m_vfd_file {
	H5FD_t pub; /* must be first: libhdf5 casts between the two */
	struct h5m_vfd_info info;
	haddr_t eoa;
};

#define H5M_VFD_MAXADDR (((haddr_t)1 << 62) - 1)

static void *vfd_fapl_copy(const void *fa)
{
	struct h5m_vfd_info *c = malloc(sizeof(*c));

	if (c)
		memcpy(c, fa, sizeof(*c));
	return c;
}

static herr_t vfd_fapl_free(void *fa)
{
	free(fa);
	return 0;
}

static void *vfd_fapl_get(H5FD_t *f)
{
	return vfd_fapl_copy(&((struct h5m_vfd_file *)f)->info);
}

static H5FD_t *vfd_open(const char *name, unsigned flags, hid_t fapl,
			haddr_t maxaddr)
{
	const struct h5m_vfd_info *info;
	struct h5m_vfd_file *f;

	(void)name;
	(void)maxaddr;
	if (flags & (H5F_ACC_RDWR | H5F_ACC_TRUNC | H5F_ACC_CREAT))
		return NULL; /* read-only driver */
	info = H5Pget_driver_info(fapl);
	if (!info || !info->read)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->info = *info;
	return &f->pub;
}

static herr_t vfd_close(H5FD_t *f)
{
	free(f);
	return 0;
}

static int vfd_cmp(const H5FD_t *a, const H5FD_t *b)
{
	const struct h5m_vfd_info *x = &((const struct h5m_vfd_file *)a)->info;
	const struct h5m_vfd_info *y = &((const struct h5m_vfd_file *)b)->info;

	if (x->ctx != y->ctx)
		return (uintptr_t)x->ctx < (uintptr_t)y->ctx ? -1 : 1;
	if (x->read != y->read)
		return (uintptr_t)x->read < (uintptr_t)y->read ? -1 : 1;
	return 0;
}

static herr_t vfd_query(const H5FD_t *f, unsigned long *flags)
{
	(void)f;
	/* metadata accumulation: fewer, larger callback reads */
	*flags = H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE;
	return 0;
}

static haddr_t vfd_get_eoa(const H5FD_t *f, H5FD_mem_t type)
{
	(void)type;
	return ((const struct h5m_vfd_file *)f)->eoa;
}

static herr_t vfd_set_eoa(H5FD_t *f, H5FD_mem_t type, haddr_t addr)
{
	(void)type;
	if (addr > H5M_VFD_MAXADDR)
		return -1;
	((struct h5m_vfd_file *)f)->eoa = addr;
	return 0;
}

static haddr_t vfd_get_eof(const H5FD_t *f, H5FD_mem_t type)
{
	(void)type;
	return ((const struct h5m_vfd_file *)f)->info.size;
}

static herr_t vfd_read(H5FD_t *pub, H5FD_mem_t type, hid_t dxpl, haddr_t addr,
		       size_t size, void *buf)
{
	struct h5m_vfd_file *f = (struct h5m_vfd_file *)pub;
	uint64_t eof = f->info.size;
	size_t n = 0;
	int rc;

	(void)dxpl;
	if (addr == HADDR_UNDEF || addr > H5M_VFD_MAXADDR ||
	    size > H5M_VFD_MAXADDR - addr)
		return -1;
	if (type == H5FD_MEM_DRAW && f->info.cap && f->info.cap->on) {
		f->info.cap->n++;
		f->info.cap->addr = addr;
		f->info.cap->size = size;
		return 0;
	}
	if (addr < eof)
		n = eof - addr < size ? (size_t)(eof - addr) : size;
	if (n) {
		rc = f->info.read(f->info.ctx, addr, buf, n);
		if (rc) {
			if (f->info.err && !*f->info.err)
				*f->info.err = rc < 0 ? rc : -EIO;
			return -1;
		}
	}
	memset((char *)buf + n, 0, size - n);
	return 0;
}

static herr_t vfd_write(H5FD_t *f, H5FD_mem_t type, hid_t dxpl, haddr_t addr,
			size_t size, const void *buf)
{
	(void)f;
	(void)type;
	(void)dxpl;
	(void)addr;
	(void)size;
	(void)buf;
	return -1; /* read-only */
}

static const H5FD_class_t h5m_vfd_class = {
	.name = "cloudh5",
	.maxaddr = H5M_VFD_MAXADDR,
	.fc_degree = H5F_CLOSE_WEAK,
	.fapl_size = sizeof(struct h5m_vfd_info),
	.fapl_get = vfd_fapl_get,
	.fapl_copy = vfd_fapl_copy,
	.fapl_free = vfd_fapl_free,
	.open = vfd_open,
	.close = vfd_close,
	.cmp = vfd_cmp,
	.query = vfd_query,
	.get_eoa = vfd_get_eoa,
	.set_eoa = vfd_set_eoa,
	.get_eof = vfd_get_eof,
	.read = vfd_read,
	.write = vfd_write,
	.fl_map = H5FD_FLMAP_DICHOTOMY,
};

static void vfd_register(void)
{
	/* libhdf5 must not print its error stacks: we map errors to errno
	 * and log them ourselves. */
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	h5m_vfd_driver = H5FDregister(&h5m_vfd_class);
	if (h5m_vfd_driver < 0)
		ch5_err("h5m: cannot register the HDF5 file driver");
}

hid_t h5m_vfd_id(void)
{
	pthread_once(&h5m_vfd_once, vfd_register);
	return h5m_vfd_driver;
}

int h5m_vfd_set_fapl(hid_t fapl, const struct h5m_vfd_info *info)
{
	hid_t id = h5m_vfd_id();

	if (id < 0 || H5Pset_driver(fapl, id, info) < 0)
		return -EIO;
	return 0;
}
