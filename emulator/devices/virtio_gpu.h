/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * virtio-gpu (DeviceID 16, virtio 1.2 section 5.7), 2D only: no virgl, no
 * EDID, no blob resources, no feature bits. One scanout, the size of the
 * machine's framebuffer; what the guest shows on it is copied into that
 * framebuffer (x8r8g8b8, stride = width * 4) with its pages marked dirty,
 * so every host-side consumer of the framebuffer sees it unchanged.
 *
 * Queues (256 entries each): 0 controlq, 1 cursorq. Every controlq request
 * gets a response (the request's FENCE flag, fence_id, ctx_id and
 * ring_idx echoed back). Commands served:
 *   GET_DISPLAY_INFO         one enabled scanout, fb_width x fb_height
 *   RESOURCE_CREATE_2D       B8G8R8A8/X8, A8R8G8B8/X8, R8G8B8A8/X8, A8B8G8R8/X8B8G8R8;
 *                            other formats: ERR_INVALID_PARAMETER
 *   RESOURCE_UNREF           (also leaves the scanout when it was shown)
 *   RESOURCE_ATTACH_BACKING  guest RAM scatter list, DETACH_BACKING
 *   SET_SCANOUT              resource 0 turns the scanout off (the
 *                            framebuffer goes black); otherwise the shown
 *                            rectangle is drawn at once
 *   TRANSFER_TO_HOST_2D      backing -> the resource's host copy
 *   RESOURCE_FLUSH           the resource's host copy -> framebuffer, clipped
 *                            to the scanout's rectangle and the framebuffer
 * Anything else: ERR_UNSPEC. The cursorq is consumed and ignored: buffers
 * come back with 0 bytes written and no cursor is drawn (the VNC client
 * draws its own pointer).
 *
 * Resources are kept on the host converted to the framebuffer's format, so
 * a flush is a row copy; the conversion happens on transfer.
 *
 * The guest is hostile. Refused with an error response and one debug log
 * line, changing nothing (no resource, no backing, no framebuffer byte):
 * resource id 0 or unknown (ERR_INVALID_RESOURCE_ID), an id already in use,
 * a width or height of 0 or above VIRTIO_GPU_MAX_DIM, more than
 * VIRTIO_GPU_MAX_RESOURCES resources, resources totalling more than
 * VIRTIO_GPU_MAX_HOST_BYTES of host memory (pixels plus backing entries:
 * ERR_OUT_OF_MEMORY), a scanout id other than 0 (ERR_INVALID_SCANOUT_ID),
 * a rectangle not inside its resource (computed in 64 bits, no overflow),
 * a backing of 0 or more than VIRTIO_GPU_MAX_ENTRIES entries, an entry not
 * wholly inside guest RAM, overlapping entries, backing already attached,
 * a transfer whose rows reach past the end of the backing or into a
 * resource without backing, a request shorter than its command (all
 * ERR_INVALID_PARAMETER or ERR_UNSPEC). A chain with no room for the
 * response header is returned with 0 bytes written.
 *
 * Save/load: the scanout and every resource (id, format, size, backing
 * entries as guest addresses, and its host copy of the pixels); load
 * checks all of it against the limits and guest RAM before it changes
 * anything.
 *
 * Threading: everything is behind the transport's device lock and runs on
 * the CPU thread (requests are served when the driver notifies); the
 * framebuffer is written there, as the guest's own stores would be.
 */

#include "devices/virtio_mmio.h"

#define VIRTIO_ID_GPU 16U
#define VIRTIO_GPU_QUEUE_SIZE 256U

#define VIRTIO_GPU_MAX_DIM 8192U
#define VIRTIO_GPU_MAX_RESOURCES 256U
#define VIRTIO_GPU_MAX_ENTRIES 16384U
#ifndef VIRTIO_GPU_MAX_HOST_BYTES
/* The fuzz target sets a smaller one: inputs then test the limit without allocating 128 MiB each. */
#define VIRTIO_GPU_MAX_HOST_BYTES (128ULL << 20)
#endif

/* Control commands and responses (virtio 1.2, 5.7.6.7). */
#define VIRTIO_GPU_CMD_GET_DISPLAY_INFO         0x0100U
#define VIRTIO_GPU_CMD_RESOURCE_CREATE_2D       0x0101U
#define VIRTIO_GPU_CMD_RESOURCE_UNREF           0x0102U
#define VIRTIO_GPU_CMD_SET_SCANOUT              0x0103U
#define VIRTIO_GPU_CMD_RESOURCE_FLUSH           0x0104U
#define VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D      0x0105U
#define VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING  0x0106U
#define VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING  0x0107U
#define VIRTIO_GPU_CMD_UPDATE_CURSOR            0x0300U
#define VIRTIO_GPU_CMD_MOVE_CURSOR              0x0301U

#define VIRTIO_GPU_RESP_OK_NODATA               0x1100U
#define VIRTIO_GPU_RESP_OK_DISPLAY_INFO         0x1101U
#define VIRTIO_GPU_RESP_ERR_UNSPEC              0x1200U
#define VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY       0x1201U
#define VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID  0x1202U
#define VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID 0x1203U
#define VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER   0x1205U

#define VIRTIO_GPU_FLAG_FENCE 1U

/* Pixel formats (byte order in memory is the name's order). */
#define VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM 1U
#define VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM 2U
#define VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM 3U
#define VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM 4U
#define VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM 67U
#define VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM 68U
#define VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM 121U
#define VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM 134U

/* Sizes of the wire structures. */
#define VIRTIO_GPU_HDR_SIZE 24U
#define VIRTIO_GPU_DISPLAY_INFO_SIZE (VIRTIO_GPU_HDR_SIZE + 16U * 24U)
#define VIRTIO_GPU_MEM_ENTRY_SIZE 16U

/* The machine's display device when --gpu virtio (the scanout spans the host's framebuffer). */
extern const VirtioDeviceType virtio_gpu_type;
