/* SPDX-License-Identifier: MIT */
/*
 * virtio-gpu, 2D: see virtio_gpu.h for the commands, the limits and what
 * is refused. Every request is parsed from a local copy of its readable
 * bytes; every number the guest gave is checked in 64 bits before it is
 * used as a size or an index.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_gpu.h"
#include "log.h"
#include "macro.h"

#define BPP 4U                          /* every accepted format, and the framebuffer's */
#define REQUEST_MAX 64U                 /* the longest fixed part of a command (TRANSFER_TO_HOST_2D: 56) */

#define CMD_SIZE_CREATE_2D 40U
#define CMD_SIZE_UNREF 32U
#define CMD_SIZE_SET_SCANOUT 48U
#define CMD_SIZE_FLUSH 48U
#define CMD_SIZE_TRANSFER 56U
#define CMD_SIZE_ATTACH 32U
#define CMD_SIZE_DETACH 32U

typedef struct GpuRect {
        uint32_t x, y, width, height;
} GpuRect;

/* One piece of a resource's backing: guest-physical, wholly in RAM; 'start' is its offset in the backing. */
typedef struct GpuEntry {
        uint64_t addr;
        uint32_t len;
        uint64_t start;
} GpuEntry;

typedef struct GpuResource {
        uint32_t id, format, width, height;
        uint8_t *pixels;                /* width * height, in the framebuffer's x8r8g8b8 */
        GpuEntry *entries;              /* NULL: no backing attached */
        uint32_t n_entries;
        uint64_t backing_len;
} GpuResource;

/* Everything below is under the transport's device lock. */
typedef struct VirtioGpu {
        VirtioMmio *transport;
        PhysMem *mem;
        uint32_t width, height;         /* the scanout: the framebuffer's size */

        GpuResource *resources[VIRTIO_GPU_MAX_RESOURCES];
        unsigned n_resources;
        uint64_t host_bytes;            /* pixels and backing entries of all resources */

        bool scanout_on;
        uint32_t scanout_resource;
        GpuRect scanout;                /* the part of the resource shown, from the framebuffer's top left */

        VirtqChain chain;               /* scratch for the request being served */
        uint8_t row[VIRTIO_GPU_MAX_DIM * BPP];  /* one row of a transfer, in the guest's format */
} VirtioGpu;

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

static GpuRect get_rect(const uint8_t *p) {
        return (GpuRect) { get_le32(p), get_le32(p + 4), get_le32(p + 8), get_le32(p + 12) };
}

/* Where blue, green and red sit in a pixel of 'format'; false for formats not taken. */
static bool format_layout(uint32_t format, uint8_t ret_bgr[3]) {
        static const struct {
                uint32_t format;
                uint8_t b, g, r;
        } layouts[] = {
                { VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 0, 1, 2 },
                { VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 1, 2 },
                { VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM, 3, 2, 1 },
                { VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM, 3, 2, 1 },
                { VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM, 2, 1, 0 },
                { VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, 2, 1, 0 },
                { VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM, 1, 2, 3 },
                { VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM, 1, 2, 3 },
        };

        for (size_t i = 0; i < ELEMENTSOF(layouts); i++)
                if (layouts[i].format == format) {
                        ret_bgr[0] = layouts[i].b;
                        ret_bgr[1] = layouts[i].g;
                        ret_bgr[2] = layouts[i].r;
                        return true;
                }
        return false;
}

/* Whether rect lies inside a width x height surface (64-bit sums: no wrap-around). */
static bool rect_inside(const GpuRect *r, uint32_t width, uint32_t height) {
        return (uint64_t) r->x + r->width <= width && (uint64_t) r->y + r->height <= height;
}

static GpuResource *resource_find(VirtioGpu *gpu, uint32_t id, unsigned *ret_index) {
        if (id == 0)
                return NULL;
        for (unsigned i = 0; i < gpu->n_resources; i++)
                if (gpu->resources[i]->id == id) {
                        if (ret_index)
                                *ret_index = i;
                        return gpu->resources[i];
                }
        return NULL;
}

static uint64_t resource_pixel_bytes(const GpuResource *res) {
        return (uint64_t) res->width * res->height * BPP;
}

static GpuResource *resource_free(GpuResource *res) {
        if (res) {
                free(res->pixels);
                free(res->entries);
                free(res);
        }
        return NULL;
}

static void free_all_resources(VirtioGpu *gpu) {
        for (unsigned i = 0; i < gpu->n_resources; i++)
                gpu->resources[i] = resource_free(gpu->resources[i]);
        gpu->n_resources = 0;
        gpu->host_bytes = 0;
        gpu->scanout_on = false;
        gpu->scanout_resource = 0;
        gpu->scanout = (GpuRect) {};
}

/* ---- backing ---- */

static int compare_entries(const void *a, const void *b) {
        const GpuEntry *x = a, *y = b;
        return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/*
 * Checks a scatter list (every entry non-empty and wholly in guest RAM, no
 * two overlapping), fills in each entry's 'start' and returns the total.
 */
static int backing_check(const PhysMem *mem, GpuEntry *entries, uint32_t n, uint64_t *ret_len) {
        _cleanup_free_ GpuEntry *sorted = NULL;
        uint64_t total = 0;

        if (n == 0 || n > VIRTIO_GPU_MAX_ENTRIES)
                return -EINVAL;
        for (uint32_t i = 0; i < n; i++) {
                uint64_t off = entries[i].addr - mem->ram_base;

                if (entries[i].len == 0 || entries[i].addr < mem->ram_base || off >= mem->ram_size ||
                    entries[i].len > mem->ram_size - off)
                        return -EFAULT;
                entries[i].start = total;
                total += entries[i].len;
        }
        sorted = malloc(sizeof(GpuEntry) * n);
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, entries, sizeof(GpuEntry) * n);
        qsort(sorted, n, sizeof(GpuEntry), compare_entries);
        for (uint32_t i = 1; i < n; i++)
                if (sorted[i - 1].addr + sorted[i - 1].len > sorted[i].addr)
                        return -ENOTUNIQ;
        *ret_len = total;
        return 0;
}

/* Copies [offset, offset+len) of the backing (checked to lie inside it) into buf. */
static void backing_read(const PhysMem *mem, const GpuResource *res, uint64_t offset, uint8_t *buf, size_t len) {
        uint32_t lo = 0, hi = res->n_entries;

        /* The last entry starting at or before offset. */
        while (hi - lo > 1) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (res->entries[mid].start <= offset)
                        lo = mid;
                else
                        hi = mid;
        }
        for (uint32_t i = lo; len > 0 && i < res->n_entries; i++) {
                const GpuEntry *e = &res->entries[i];
                uint64_t skip = offset - e->start;
                size_t n = MIN((uint64_t) len, e->len - skip);

                memcpy(buf, mem->ram + (e->addr - mem->ram_base) + skip, n);
                buf += n;
                len -= n;
                offset += n;
        }
}

/* ---- the framebuffer ---- */

/* Copies the resource's rectangle r (resource coordinates) to the framebuffer, clipped to the scanout. */
static void draw(VirtioGpu *gpu, const GpuResource *res, const GpuRect *r) {
        const GpuRect *s = &gpu->scanout;
        uint64_t x0 = MAX(r->x, s->x), y0 = MAX(r->y, s->y);
        uint64_t x1 = MIN((uint64_t) r->x + r->width, (uint64_t) s->x + MIN(s->width, gpu->width));
        uint64_t y1 = MIN((uint64_t) r->y + r->height, (uint64_t) s->y + MIN(s->height, gpu->height));
        uint64_t stride = (uint64_t) gpu->width * BPP;

        if (x0 >= x1 || y0 >= y1)
                return;
        for (uint64_t y = y0; y < y1; y++) {
                uint64_t dst = (y - s->y) * stride + (x0 - s->x) * BPP;

                memcpy(gpu->mem->fb + dst, res->pixels + (y * res->width + x0) * BPP, (x1 - x0) * BPP);
                physmem_fb_mark_range(gpu->mem, dst, (x1 - x0) * BPP);
        }
}

static void blank(VirtioGpu *gpu) {
        uint64_t len = (uint64_t) gpu->width * gpu->height * BPP;

        memset(gpu->mem->fb, 0, len);
        physmem_fb_mark_range(gpu->mem, 0, len);
}

/* ---- commands: each returns the response type ---- */

#define REFUSE(resp, ...)                                       \
        ({                                                      \
                log_debug("virtio-gpu: " __VA_ARGS__);          \
                (uint32_t) (resp);                              \
        })

static uint32_t resource_create(VirtioGpu *gpu, uint32_t id, uint32_t format, uint32_t width, uint32_t height,
                                GpuResource **ret) {
        uint8_t bgr[3];

        if (id == 0 || resource_find(gpu, id, NULL))
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "resource id %u is 0 or in use", id);
        if (!format_layout(format, bgr))
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "format %u not supported", format);
        if (width == 0 || height == 0 || width > VIRTIO_GPU_MAX_DIM || height > VIRTIO_GPU_MAX_DIM)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "resource size %ux%u refused", width, height);
        uint64_t bytes = (uint64_t) width * height * BPP;
        if (gpu->n_resources >= VIRTIO_GPU_MAX_RESOURCES || bytes > VIRTIO_GPU_MAX_HOST_BYTES - gpu->host_bytes)
                return REFUSE(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "no room for a %ux%u resource", width, height);

        _cleanup_free_ GpuResource *res = calloc(1, sizeof(GpuResource));
        if (!res)
                return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
        res->pixels = calloc(1, bytes);
        if (!res->pixels)
                return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
        res->id = id;
        res->format = format;
        res->width = width;
        res->height = height;
        gpu->resources[gpu->n_resources++] = res;
        gpu->host_bytes += bytes;
        if (ret)
                *ret = res;
        TAKE_PTR(res);
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_create_2d(VirtioGpu *gpu, const uint8_t *req) {
        return resource_create(gpu, get_le32(req + 24), get_le32(req + 28), get_le32(req + 32), get_le32(req + 36),
                               NULL);
}

static uint32_t cmd_unref(VirtioGpu *gpu, const uint8_t *req) {
        uint32_t id = get_le32(req + 24);
        unsigned index;
        GpuResource *res = resource_find(gpu, id, &index);

        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "unref of unknown resource %u", id);
        if (gpu->scanout_on && gpu->scanout_resource == id) {
                gpu->scanout_on = false;
                gpu->scanout_resource = 0;
        }
        gpu->host_bytes -= resource_pixel_bytes(res) + (uint64_t) res->n_entries * sizeof(GpuEntry);
        resource_free(res);
        gpu->resources[index] = gpu->resources[--gpu->n_resources];
        gpu->resources[gpu->n_resources] = NULL;
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_attach_backing(VirtioGpu *gpu, const VirtqChain *chain, const uint8_t *req) {
        uint32_t id = get_le32(req + 24), n = get_le32(req + 28);
        GpuResource *res = resource_find(gpu, id, NULL);
        _cleanup_free_ GpuEntry *entries = NULL;
        uint64_t len;
        int r;

        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "backing for unknown resource %u", id);
        if (res->entries)
                return REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "resource %u already has a backing", id);
        if (n == 0 || n > VIRTIO_GPU_MAX_ENTRIES ||
            chain->out_len < CMD_SIZE_ATTACH + (uint64_t) n * VIRTIO_GPU_MEM_ENTRY_SIZE)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "backing of %u entries refused", n);
        if ((uint64_t) n * sizeof(GpuEntry) > VIRTIO_GPU_MAX_HOST_BYTES - gpu->host_bytes)
                return REFUSE(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY, "no room for %u backing entries", n);

        entries = calloc(n, sizeof(GpuEntry));
        if (!entries)
                return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
        for (uint32_t i = 0; i < n; i++) {
                uint8_t e[VIRTIO_GPU_MEM_ENTRY_SIZE];

                virtqueue_chain_read(chain, CMD_SIZE_ATTACH + (size_t) i * sizeof(e), e, sizeof(e));
                entries[i].addr = get_le64(e);
                entries[i].len = get_le32(e + 8);
        }
        r = backing_check(gpu->mem, entries, n, &len);
        if (r == -ENOMEM)
                return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
        if (r < 0)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "backing of resource %u refused: %s", id,
                              r == -ENOTUNIQ ? "entries overlap" : "an entry is empty or outside RAM");
        res->entries = TAKE_PTR(entries);
        res->n_entries = n;
        res->backing_len = len;
        gpu->host_bytes += (uint64_t) n * sizeof(GpuEntry);
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_detach_backing(VirtioGpu *gpu, const uint8_t *req) {
        uint32_t id = get_le32(req + 24);
        GpuResource *res = resource_find(gpu, id, NULL);

        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "detach from unknown resource %u", id);
        if (!res->entries)
                return REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "resource %u has no backing to detach", id);
        gpu->host_bytes -= (uint64_t) res->n_entries * sizeof(GpuEntry);
        res->entries = mfree(res->entries);
        res->n_entries = 0;
        res->backing_len = 0;
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_set_scanout(VirtioGpu *gpu, const uint8_t *req) {
        GpuRect r = get_rect(req + 24);
        uint32_t scanout_id = get_le32(req + 40), id = get_le32(req + 44);
        GpuResource *res;

        if (scanout_id != 0)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID, "scanout %u does not exist", scanout_id);
        if (id == 0) {
                gpu->scanout_on = false;
                gpu->scanout_resource = 0;
                blank(gpu);
                return VIRTIO_GPU_RESP_OK_NODATA;
        }
        res = resource_find(gpu, id, NULL);
        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "scanout of unknown resource %u", id);
        if (r.width == 0 || r.height == 0 || !rect_inside(&r, res->width, res->height))
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "scanout rectangle %ux%u+%u+%u outside resource %u",
                              r.width, r.height, r.x, r.y, id);
        gpu->scanout_on = true;
        gpu->scanout_resource = id;
        gpu->scanout = r;
        draw(gpu, res, &r);
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_flush(VirtioGpu *gpu, const uint8_t *req) {
        GpuRect r = get_rect(req + 24);
        uint32_t id = get_le32(req + 40);
        GpuResource *res = resource_find(gpu, id, NULL);

        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "flush of unknown resource %u", id);
        if (!rect_inside(&r, res->width, res->height))
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "flush rectangle outside resource %u", id);
        if (gpu->scanout_on && gpu->scanout_resource == id)
                draw(gpu, res, &r);
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_transfer(VirtioGpu *gpu, const uint8_t *req) {
        GpuRect r = get_rect(req + 24);
        uint64_t offset = get_le64(req + 40);
        uint32_t id = get_le32(req + 48);
        GpuResource *res = resource_find(gpu, id, NULL);
        uint8_t bgr[3] = {};

        if (!res)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID, "transfer to unknown resource %u", id);
        if (!rect_inside(&r, res->width, res->height))
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "transfer rectangle outside resource %u", id);
        if (!res->entries)
                return REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "transfer to resource %u without backing", id);
        if (r.width == 0 || r.height == 0)
                return VIRTIO_GPU_RESP_OK_NODATA;

        /* Row h comes from offset + h * stride: the last row must end inside the backing. */
        uint64_t stride = (uint64_t) res->width * BPP, row_bytes = (uint64_t) r.width * BPP;
        if (offset > res->backing_len || (r.height - 1) * stride + row_bytes > res->backing_len - offset)
                return REFUSE(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER, "transfer past the backing of resource %u", id);

        format_layout(res->format, bgr);
        for (uint32_t h = 0; h < r.height; h++) {
                uint8_t *dst = res->pixels + ((uint64_t) (r.y + h) * res->width + r.x) * BPP;

                backing_read(gpu->mem, res, offset + h * stride, gpu->row, row_bytes);
                for (uint32_t x = 0; x < r.width; x++) {
                        const uint8_t *s = gpu->row + (size_t) x * BPP;

                        dst[x * BPP + 0] = s[bgr[0]];
                        dst[x * BPP + 1] = s[bgr[1]];
                        dst[x * BPP + 2] = s[bgr[2]];
                        dst[x * BPP + 3] = 0;
                }
        }
        return VIRTIO_GPU_RESP_OK_NODATA;
}

static void display_info(const VirtioGpu *gpu, uint8_t *resp) {
        uint8_t *mode = resp + VIRTIO_GPU_HDR_SIZE;     /* pmodes[0]: rect, enabled, flags */

        put_le32(mode + 8, gpu->width);
        put_le32(mode + 12, gpu->height);
        put_le32(mode + 16, 1);
}

/* Serves one controlq request; returns the bytes written into its writable part. */
static uint32_t control(VirtioGpu *gpu, const VirtqChain *chain) {
        uint8_t req[REQUEST_MAX] = {}, resp[VIRTIO_GPU_DISPLAY_INFO_SIZE] = {};
        size_t n = virtqueue_chain_read(chain, 0, req, sizeof(req));
        uint32_t type = get_le32(req), resp_size = VIRTIO_GPU_HDR_SIZE, result;
        size_t need;

        switch (type) {
        case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:         need = VIRTIO_GPU_HDR_SIZE; break;
        case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:       need = CMD_SIZE_CREATE_2D; break;
        case VIRTIO_GPU_CMD_RESOURCE_UNREF:           need = CMD_SIZE_UNREF; break;
        case VIRTIO_GPU_CMD_SET_SCANOUT:              need = CMD_SIZE_SET_SCANOUT; break;
        case VIRTIO_GPU_CMD_RESOURCE_FLUSH:           need = CMD_SIZE_FLUSH; break;
        case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:      need = CMD_SIZE_TRANSFER; break;
        case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:  need = CMD_SIZE_ATTACH; break;
        case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:  need = CMD_SIZE_DETACH; break;
        default:                                      need = 0; break;
        }

        if (chain->in_len < VIRTIO_GPU_HDR_SIZE) {
                log_debug("virtio-gpu: request 0x%x has no room for a response", type);
                return 0;
        }
        if (need == 0)
                result = REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "unknown command 0x%x", type);
        else if (n < need)
                result = REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "command 0x%x too short (%zu bytes)", type, n);
        else
                switch (type) {
                case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
                        if (chain->in_len < VIRTIO_GPU_DISPLAY_INFO_SIZE) {
                                result = REFUSE(VIRTIO_GPU_RESP_ERR_UNSPEC, "no room for the display info");
                                break;
                        }
                        display_info(gpu, resp);
                        resp_size = VIRTIO_GPU_DISPLAY_INFO_SIZE;
                        result = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
                        break;
                case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:      result = cmd_create_2d(gpu, req); break;
                case VIRTIO_GPU_CMD_RESOURCE_UNREF:          result = cmd_unref(gpu, req); break;
                case VIRTIO_GPU_CMD_SET_SCANOUT:             result = cmd_set_scanout(gpu, req); break;
                case VIRTIO_GPU_CMD_RESOURCE_FLUSH:          result = cmd_flush(gpu, req); break;
                case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:     result = cmd_transfer(gpu, req); break;
                case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING: result = cmd_attach_backing(gpu, chain, req); break;
                default:                                     result = cmd_detach_backing(gpu, req); break;
                }

        /* The header: type, the fence flag, fence_id, ctx_id and ring_idx as the request had them. */
        put_le32(resp, result);
        put_le32(resp + 4, get_le32(req + 4) & VIRTIO_GPU_FLAG_FENCE);
        memcpy(resp + 8, req + 8, 13);
        return (uint32_t) virtqueue_chain_write(chain, 0, resp, resp_size);
}

static uint16_t gpu_queue_num_max(_unused_ void *backend, _unused_ unsigned index) {
        return VIRTIO_GPU_QUEUE_SIZE;
}

/* No display-change event is ever raised: events_read stays 0, and events_clear has nothing to clear. */
static void gpu_config_read(_unused_ void *backend, uint32_t offset, uint8_t *buf, unsigned size) {
        uint8_t config[16] = {};        /* events_read, events_clear, num_scanouts, num_capsets */

        put_le32(config + 8, 1);
        memcpy(buf, config + offset, size);
}

static void gpu_config_write(_unused_ void *backend, _unused_ uint32_t offset, _unused_ const uint8_t *buf,
                             _unused_ unsigned size) {
}

static void gpu_queue_notify(void *backend, unsigned index) {
        VirtioGpu *gpu = backend;
        VirtQueue *vq = virtio_mmio_queue(gpu->transport, index);
        bool pushed = false;

        if (!vq)
                return;
        /* At most one round of the ring per notification: a driver cannot keep the CPU thread here. */
        for (unsigned i = 0; i < VIRTIO_GPU_QUEUE_SIZE; i++) {
                if (virtqueue_pop(vq, &gpu->chain) <= 0)
                        break;
                /* The cursorq: consumed, nothing drawn. */
                uint32_t written = index == 0 ? control(gpu, &gpu->chain) : 0;
                if (virtqueue_push(vq, &gpu->chain, written) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_mmio_notify_locked(gpu->transport, vq);
}

static void gpu_driver_ok(void *backend) {
        gpu_queue_notify(backend, 0);
        gpu_queue_notify(backend, 1);
}

/* The framebuffer keeps its last picture, as a monitor would until the next driver draws. */
static void gpu_reset_backend(void *backend) {
        free_all_resources(backend);
}

static int gpu_create(const DeviceContext *ctx, void **ret, VirtioMmio **ret_transport) {
        static const VirtioDeviceOps ops = {
                .device_id = VIRTIO_ID_GPU,
                .num_queues = 2,
                .config_size = 16,
                .queue_num_max = gpu_queue_num_max,
                .config_read = gpu_config_read,
                .config_write = gpu_config_write,
                .queue_notify = gpu_queue_notify,
                .driver_ok = gpu_driver_ok,
                .reset = gpu_reset_backend,
        };
        const DeviceHost *host = ctx->host;
        int r;

        /* The scanout is the framebuffer: without one there is nothing to show. */
        if (!host || host->fb_width == 0 || host->fb_height == 0 || !ctx->mem->fb ||
            (uint64_t) host->fb_width * host->fb_height * BPP > ctx->mem->fb_size)
                return -EINVAL;

        _cleanup_free_ VirtioGpu *gpu = calloc(1, sizeof(VirtioGpu));
        if (!gpu)
                return -ENOMEM;
        gpu->mem = ctx->mem;
        gpu->width = host->fb_width;
        gpu->height = host->fb_height;
        r = virtio_mmio_new(ctx->mem, &ctx->irq, &ops, gpu, &gpu->transport);
        if (r < 0)
                return r;
        *ret_transport = gpu->transport;
        *ret = TAKE_PTR(gpu);
        return 0;
}

static void gpu_free(void *backend) {
        VirtioGpu *gpu = backend;

        virtio_mmio_free(gpu->transport);
        free_all_resources(gpu);
        free(gpu);
}

/* ---- save and load ---- */

static int gpu_save(void *backend, StateWriter *w) {
        VirtioGpu *gpu = backend;

        state_put_bool(w, gpu->scanout_on);
        state_put_u32(w, gpu->scanout_resource);
        state_put_u32(w, gpu->scanout.x);
        state_put_u32(w, gpu->scanout.y);
        state_put_u32(w, gpu->scanout.width);
        state_put_u32(w, gpu->scanout.height);
        state_put_u32(w, gpu->n_resources);
        for (unsigned i = 0; i < gpu->n_resources; i++) {
                const GpuResource *res = gpu->resources[i];

                state_put_u32(w, res->id);
                state_put_u32(w, res->format);
                state_put_u32(w, res->width);
                state_put_u32(w, res->height);
                state_put_u32(w, res->n_entries);
                for (uint32_t e = 0; e < res->n_entries; e++) {
                        state_put_u64(w, res->entries[e].addr);
                        state_put_u32(w, res->entries[e].len);
                }
                state_put_bytes(w, res->pixels, resource_pixel_bytes(res));
        }
        return state_writer_error(w);
}

/* Reads one resource into 'into' (a device of its own), with every check a guest request gets. */
static int load_resource(VirtioGpu *into, StateReader *r) {
        uint32_t id, format, width, height, n;
        GpuResource *res = NULL;
        uint64_t len;
        int k;

        state_get_u32(r, &id);
        state_get_u32(r, &format);
        state_get_u32(r, &width);
        state_get_u32(r, &height);
        state_get_u32_max(r, VIRTIO_GPU_MAX_ENTRIES, &n);
        if (state_reader_error(r) < 0)
                return state_reader_error(r);
        if (resource_create(into, id, format, width, height, &res) != VIRTIO_GPU_RESP_OK_NODATA)
                return -ERANGE;
        if (n > 0) {
                if ((uint64_t) n * sizeof(GpuEntry) > VIRTIO_GPU_MAX_HOST_BYTES - into->host_bytes)
                        return -ERANGE;
                res->entries = calloc(n, sizeof(GpuEntry));
                if (!res->entries)
                        return -ENOMEM;
                res->n_entries = n;
                into->host_bytes += (uint64_t) n * sizeof(GpuEntry);
                for (uint32_t e = 0; e < n; e++) {
                        state_get_u64(r, &res->entries[e].addr);
                        state_get_u32(r, &res->entries[e].len);
                }
                if (state_reader_error(r) < 0)
                        return state_reader_error(r);
                k = backing_check(into->mem, res->entries, n, &len);
                if (k < 0)
                        return k == -ENOMEM ? k : -ERANGE;
                res->backing_len = len;
        }
        return state_get_bytes(r, res->pixels, resource_pixel_bytes(res));
}

static int gpu_load(void *backend, StateReader *r) {
        VirtioGpu *gpu = backend;
        /* Built aside and swapped in whole: a refused state leaves the device as it was. */
        _cleanup_free_ VirtioGpu *fresh = calloc(1, sizeof(VirtioGpu));
        uint32_t n;
        int k = 0;

        if (!fresh)
                return -ENOMEM;
        fresh->mem = gpu->mem;
        fresh->width = gpu->width;
        fresh->height = gpu->height;
        state_get_bool(r, &fresh->scanout_on);
        state_get_u32(r, &fresh->scanout_resource);
        state_get_u32(r, &fresh->scanout.x);
        state_get_u32(r, &fresh->scanout.y);
        state_get_u32(r, &fresh->scanout.width);
        state_get_u32(r, &fresh->scanout.height);
        state_get_u32_max(r, VIRTIO_GPU_MAX_RESOURCES, &n);
        k = state_reader_error(r);
        for (uint32_t i = 0; k == 0 && i < n; i++)
                k = load_resource(fresh, r);
        if (k == 0 && fresh->scanout_on) {
                const GpuResource *shown = resource_find(fresh, fresh->scanout_resource, NULL);

                if (!shown || fresh->scanout.width == 0 || fresh->scanout.height == 0 ||
                    !rect_inside(&fresh->scanout, shown->width, shown->height))
                        k = -ERANGE;
        }
        if (k < 0) {
                free_all_resources(fresh);
                return k;
        }

        free_all_resources(gpu);
        memcpy(gpu->resources, fresh->resources, sizeof(gpu->resources));
        gpu->n_resources = fresh->n_resources;
        gpu->host_bytes = fresh->host_bytes;
        gpu->scanout_on = fresh->scanout_on;
        gpu->scanout_resource = fresh->scanout_resource;
        gpu->scanout = fresh->scanout;
        return 0;
}

const VirtioDeviceType virtio_gpu_type = {
        .name = "virtio-gpu",
        .create = gpu_create,
        .free = gpu_free,
        .save = gpu_save,
        .load = gpu_load,
};
