/* SPDX-License-Identifier: MIT */
/*
 * org.orrery.Block1: one object per disk, properties read at the time of
 * the call (the counters change with every request and emit no signal),
 * and Resize() to grow the image (same-user rule as every method).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "block/image.h"
#include "bus/block1.h"
#include "devices/virtio_blk.h"

typedef struct BusBlock {
        VmBus *bus;
        VirtioBlk *dev;
        BlockImage *image;
} BusBlock;

static int property_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusBlock *d = userdata;
        return sd_bus_message_append(reply, "s", block_image_path(d->image));
}

static int property_flag(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusBlock *d = userdata;
        int v;

        if (streq(property, "ReadOnly"))
                v = block_image_readonly(d->image);
        else if (streq(property, "Snapshot"))
                v = block_image_snapshot(d->image);
        else
                v = block_image_discard_enabled(d->image);
        return sd_bus_message_append(reply, "b", v);
}

static int property_u64(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusBlock *d = userdata;
        VirtioBlkStats st;
        uint64_t v;

        virtio_blk_stats(d->dev, &st);
        if (streq(property, "SizeBytes"))
                v = block_image_size(d->image);
        else if (streq(property, "ReadOps"))
                v = st.read_ops;
        else if (streq(property, "ReadBytes"))
                v = st.read_bytes;
        else if (streq(property, "WriteOps"))
                v = st.write_ops;
        else if (streq(property, "WriteBytes"))
                v = st.write_bytes;
        else if (streq(property, "FlushOps"))
                v = st.flush_ops;
        else
                v = st.errors;
        return sd_bus_message_append(reply, "t", v);
}

static int method_resize(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusBlock *d = userdata;
        const char *id = virtio_blk_serial(d->dev);
        BusPeer *peer = NULL;
        uint64_t size, old;
        int r;

        r = bus_check_caller(d->bus, m, &peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "t", &size);
        if (r < 0)
                return r;

        old = block_image_size(d->image);
        r = virtio_blk_resize(d->dev, size);
        switch (r) {
        case 0:
                break;
        case -EROFS:
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED, "Drive '%s' is read-only (readonly=on)", id);
        case -EOPNOTSUPP:
                return sd_bus_error_setf(error, ORRERY_ERROR_NOT_SUPPORTED,
                                         block_image_snapshot(d->image) ?
                                         "Drive '%s' is a snapshot (snapshot=on): its image is never written" :
                                         "Drive '%s' is not a regular file and cannot grow", id);
        case -EINVAL:
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Size %" PRIu64 " is not a multiple of 512 bytes", size);
        case -ERANGE:
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT,
                                         "Drive '%s' is %" PRIu64 " bytes; shrinking it to %" PRIu64 " is refused", id,
                                         old, size);
        default:
                return sd_bus_error_set_errnof(error, r, "Cannot grow drive '%s': %m", id);
        }
        bus_log_origin(peer, "a disk resize");
        if (size != old) {
                r = sd_bus_emit_properties_changed(sd_bus_message_get_bus(m), sd_bus_message_get_path(m),
                                                   "org.orrery.Block1", "SizeBytes", NULL);
                if (r < 0)
                        return r;
        }
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable block1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Path", "s", property_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ReadOnly", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Snapshot", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Discard", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SizeBytes", "t", property_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ReadOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("ReadBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("WriteOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("WriteBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("FlushOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("Errors", "t", property_u64, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Resize", SD_BUS_ARGS("t", size), SD_BUS_NO_RESULT, method_resize,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int block1_publish(VmBus *b) {
        for (size_t i = 0; i < machine_n_disks(b->machine); i++) {
                BusBlock *d = calloc(1, sizeof(BusBlock));
                int r;

                if (d) {
                        d->bus = b;
                        d->dev = machine_disk(b->machine, i);
                        d->image = machine_disk_image(b->machine, i);
                }
                r = bus_publish_owned(b, "Block", machine_disk_id(b->machine, i), "org.orrery.Block1", block1_vtable,
                                      d);
                if (r < 0)
                        return r;
        }
        return 0;
}
