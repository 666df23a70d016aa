/* Whole-file read-only mappings; see mapfile.h. */
#include "io/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int ts_map_file(const char *path, ts_mapped_file *out)
{
    out->bytes = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return ts_fail(TS_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ts_fail(TS_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            return ts_fail(TS_ERR_IO, "%s: cannot map: %s", path, strerror(err));
        }
        out->bytes = p;
        out->size = (uint64_t)sb.st_size;
    }
    close(fd);
    return 0;
}

void ts_unmap_file(ts_mapped_file *m)
{
    if (m->bytes)
        munmap((void *)m->bytes, m->size);
    m->bytes = NULL;
    m->size = 0;
}

void ts_evict_file(const ts_mapped_file *m)
{
    if (m->bytes)
        madvise((void *)m->bytes, m->size, MADV_DONTNEED);
}
