/* SPDX-License-Identifier: MIT */
/*
 * org.orrery.Block1: one object per disk, read-only properties read at the
 * time of the call (the counters change with every request and emit no
 * signal).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "block/image.h"
#include "bus/block1.h"
#include "devices/virtio_blk.h"

typedef struct BusBlock {
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

const sd_bus_vtable block1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Path", "s", property_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ReadOnly", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Snapshot", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Discard", "b", property_flag, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SizeBytes", "t", property_u64, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ReadOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("ReadBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("WriteOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("WriteBytes", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("FlushOps", "t", property_u64, 0, 0),
        SD_BUS_PROPERTY("Errors", "t", property_u64, 0, 0),
        SD_BUS_VTABLE_END,
};

int block1_publish(VmBus *b) {
        for (size_t i = 0; i < machine_n_disks(b->machine); i++) {
                BusBlock *d = calloc(1, sizeof(BusBlock));
                int r;

                if (d) {
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
