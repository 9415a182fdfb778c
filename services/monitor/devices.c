/* SPDX-License-Identifier: MIT */
/*
 * orrery-monitor's disk and network commands: see devices.h. What the VM
 * returns is shown through printable(): paths and ids come from a peer.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "log.h"
#include "macro.h"
#include "orrery-contract.h"
#include "text.h"

#define BLOCK_IFACE "org.orrery.Block1"
#define NET_IFACE "org.orrery.Network1"
#define MAX_DEVICES 64 /* objects listed at most: a VM has four free virtio slots */
#define MAX_FORWARDS 256 /* Forwards entries shown at most */
#define GUEST_ADDR "10.0.2.15" /* where Network1.AddForward forwards to */
#define EXIT_USAGE_DEVICES 2 /* the caller prints the usage */

static void print_call_error(const char *what, int r, const sd_bus_error *error) {
        if (error && sd_bus_error_is_set(error))
                log_error("%s: %s", what, printable(error->message ?: error->name));
        else
                log_error_errno(r, "%s: %m", what);
}

/* A method call on one of the VM's objects, within the client's timeout. */
static int call(const MonitorVmRef *vm, const char *path, const char *iface, const char *member, sd_bus_error *error,
                sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        if (!vm->owner)
                return -ENXIO;
        r = sd_bus_message_new_method_call(vm->bus, &m, vm->owner, path, iface, member);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return sd_bus_call(vm->bus, m, vm->timeout, error, ret_reply);
}

/* [A-Za-z0-9_]{1,32}: a drive= or net= id, one element of an object path. */
static bool id_is_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
                      (id[i] >= '0' && id[i] <= '9') || id[i] == '_'))
                        return false;
        return true;
}

static void ids_free(char **ids);

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The ids of the VM's objects under PATH/KIND/ that carry 'iface', sorted,
 * from one GetManagedObjects (at most MAX_DEVICES). NULL-terminated; free
 * with ids_free(). Logs its errors.
 */
static int list_ids(const MonitorVmRef *vm, const char *kind, const char *iface, char ***ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *prefix = NULL;
        char **ids;
        size_t n = 0;
        int r;

        if (asprintf(&prefix, "%s/%s/", vm->path, kind) < 0)
                return -ENOMEM;
        r = call(vm, "/org/orrery/VM", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", &error, &reply, NULL);
        if (r < 0) {
                print_call_error("cannot list the VM's devices", r, &error);
                return r;
        }
        ids = calloc(MAX_DEVICES + 1, sizeof(char *));
        if (!ids)
                return -ENOMEM;

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;
                bool has = false;

                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        break;
                r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        const char *name;

                        r = sd_bus_message_read(reply, "s", &name);
                        if (r >= 0 && streq(name, iface))
                                has = true;
                        if (r >= 0)
                                r = sd_bus_message_skip(reply, "a{sv}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                if (has && strncmp(path, prefix, strlen(prefix)) == 0 && id_is_valid(path + strlen(prefix)) &&
                    n < MAX_DEVICES) {
                        ids[n] = strdup(path + strlen(prefix));
                        if (!ids[n]) {
                                r = -ENOMEM;
                                break;
                        }
                        n++;
                }
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(ids[i]);
                free(ids);
                log_error_errno(r, "cannot read the VM's devices: %m");
                return r;
        }
        qsort(ids, n, sizeof(char *), compare_strings);
        *ret = ids;
        return 0;
}

static void ids_free(char **ids) {
        if (!ids)
                return;
        for (char **i = ids; *i; i++)
                free(*i);
        free(ids);
}

static inline void ids_freep(char ***ids) {
        ids_free(*ids);
}

/* The properties both commands show; what the VM did not send stays zero. */
typedef struct DeviceProps {
        char *path, *mac;
        bool readonly, snapshot, discard, link_up;
        uint64_t size, read_ops, read_bytes, write_ops, write_bytes, flush_ops, errors;
        uint64_t rx_packets, rx_bytes, rx_dropped, tx_packets, tx_bytes, tx_dropped;
        char *forwards; /* the Forwards lines, ready to print */
} DeviceProps;

static void device_props_done(DeviceProps *p) {
        free(p->path);
        free(p->mac);
        free(p->forwards);
}

static uint64_t *u64_slot(DeviceProps *p, const char *name) {
        static const struct {
                const char *name;
                size_t offset;
        } slots[] = {
                { "SizeBytes", offsetof(DeviceProps, size) },
                { "ReadOps", offsetof(DeviceProps, read_ops) },
                { "ReadBytes", offsetof(DeviceProps, read_bytes) },
                { "WriteOps", offsetof(DeviceProps, write_ops) },
                { "WriteBytes", offsetof(DeviceProps, write_bytes) },
                { "FlushOps", offsetof(DeviceProps, flush_ops) },
                { "Errors", offsetof(DeviceProps, errors) },
                { "RxPackets", offsetof(DeviceProps, rx_packets) },
                { "RxBytes", offsetof(DeviceProps, rx_bytes) },
                { "RxDropped", offsetof(DeviceProps, rx_dropped) },
                { "TxPackets", offsetof(DeviceProps, tx_packets) },
                { "TxBytes", offsetof(DeviceProps, tx_bytes) },
                { "TxDropped", offsetof(DeviceProps, tx_dropped) },
        };

        for (size_t i = 0; i < ELEMENTSOF(slots); i++)
                if (streq(name, slots[i].name))
                        return (uint64_t *) ((char *) p + slots[i].offset);
        return NULL;
}

static bool *bool_slot(DeviceProps *p, const char *name) {
        if (streq(name, "ReadOnly"))
                return &p->readonly;
        if (streq(name, "Snapshot"))
                return &p->snapshot;
        if (streq(name, "Discard"))
                return &p->discard;
        if (streq(name, "LinkUp"))
                return &p->link_up;
        return NULL;
}

/* Forwards (a(sssqq)) as lines in QEMU's "info usernet" shape. Inside the variant. */
static int read_forwards(sd_bus_message *reply, DeviceProps *p) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, shown = 0;
        FILE *f;
        int r;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        r = sd_bus_message_enter_container(reply, 'a', "(sssqq)");
        while (r >= 0) {
                const char *proto, *host, *guest;
                uint16_t host_port, guest_port;

                r = sd_bus_message_read(reply, "(sssqq)", &proto, &host, &guest, &host_port, &guest_port);
                if (r <= 0)
                        break;
                if (shown++ < MAX_FORWARDS)
                        fprintf(f, "  %s[HOST_FORWARD]  %s:%u -> %s:%u\n", streq(proto, "udp") ? "UDP" : "TCP",
                                printable(host), host_port, printable(guest), guest_port);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r < 0)
                return r;
        p->forwards = TAKE_PTR(buf);
        return 0;
}

static int read_props(const MonitorVmRef *vm, const char *kind, const char *id, const char *iface, DeviceProps *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/%s/%s", vm->path, kind, id) < 0)
                return -ENOMEM;
        r = call(vm, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply, "s", iface);
        if (r < 0) {
                print_call_error(id, r, &error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name, *contents = NULL;
                uint64_t *u;
                bool *b;

                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, NULL, &contents);
                if (r < 0)
                        break;
                if ((u = u64_slot(p, name)) && streq(contents, "t"))
                        r = sd_bus_message_read(reply, "v", "t", u);
                else if ((b = bool_slot(p, name)) && streq(contents, "b")) {
                        int v = 0;

                        r = sd_bus_message_read(reply, "v", "b", &v);
                        *b = v;
                } else if ((streq(name, "Path") || streq(name, "MAC")) && streq(contents, "s")) {
                        const char *s;
                        char **slot = streq(name, "Path") ? &p->path : &p->mac;

                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0 && !*slot && !(*slot = strdup(s)))
                                r = -ENOMEM;
                } else if (streq(name, "Forwards") && streq(contents, "a(sssqq)")) {
                        r = sd_bus_message_enter_container(reply, 'v', contents);
                        if (r >= 0)
                                r = read_forwards(reply, p);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return log_error_errno(r, "%s: cannot read its properties: %m", id);
        return 0;
}

int monitor_info_block(const MonitorVmRef *vm) {
        _cleanup_(ids_freep) char **ids = NULL;

        if (list_ids(vm, "Block", BLOCK_IFACE, &ids) < 0)
                return EXIT_FAILURE;
        if (!ids[0])
                printf("no disks\n");
        for (char **id = ids; *id; id++) {
                DeviceProps p = {};

                if (read_props(vm, "Block", *id, BLOCK_IFACE, &p) < 0) {
                        device_props_done(&p);
                        return EXIT_FAILURE;
                }
                /* QEMU's shape: "ID: FILE (FORMAT[, read-only])", then indented details. */
                printf("%s: %s (raw%s%s%s)\n", *id, p.path ? printable(p.path) : "?", p.readonly ? ", read-only" : "",
                       p.snapshot ? ", snapshot" : "", p.discard ? ", discard" : "");
                printf("    Size:             %" PRIu64 " bytes\n", p.size);
                printf("    Reads:            %" PRIu64 " (%" PRIu64 " bytes)\n", p.read_ops, p.read_bytes);
                printf("    Writes:           %" PRIu64 " (%" PRIu64 " bytes)\n", p.write_ops, p.write_bytes);
                printf("    Flushes:          %" PRIu64 "\n", p.flush_ops);
                printf("    Errors:           %" PRIu64 "\n", p.errors);
                device_props_done(&p);
        }
        return EXIT_SUCCESS;
}

int monitor_info_network(const MonitorVmRef *vm) {
        _cleanup_(ids_freep) char **ids = NULL;
        size_t index = 0;

        if (list_ids(vm, "Net", NET_IFACE, &ids) < 0)
                return EXIT_FAILURE;
        if (!ids[0])
                printf("no NICs\n");
        for (char **id = ids; *id; id++, index++) {
                DeviceProps p = {};

                if (read_props(vm, "Net", *id, NET_IFACE, &p) < 0) {
                        device_props_done(&p);
                        return EXIT_FAILURE;
                }
                /* QEMU's shape: the NIC, then its backend indented under " \ ". */
                printf("%s: index=%zu,type=nic,model=virtio-net-device,macaddr=%s%s\n", *id, index,
                       p.mac ? printable(p.mac) : "?", p.link_up ? "" : ",link=down");
                printf(" \\ %s: index=%zu,type=user,net=10.0.2.0\n", *id, index);
                printf("  rx: %" PRIu64 " packets, %" PRIu64 " bytes, %" PRIu64 " dropped\n", p.rx_packets, p.rx_bytes,
                       p.rx_dropped);
                printf("  tx: %" PRIu64 " packets, %" PRIu64 " bytes, %" PRIu64 " dropped\n", p.tx_packets, p.tx_bytes,
                       p.tx_dropped);
                if (p.forwards)
                        fputs(p.forwards, stdout);
                device_props_done(&p);
        }
        return EXIT_SUCCESS;
}

/* 1-65535, decimal. */
static int parse_port(const char *s, uint16_t *ret) {
        unsigned long v;
        char *end;

        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end || v == 0 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

/* "ADDR:PORT" (ADDR may be empty) split at the last ':', in place. */
static int split_endpoint(char *s, const char **ret_addr, uint16_t *ret_port) {
        char *colon = strrchr(s, ':');

        if (!colon)
                return -EINVAL;
        *colon = 0;
        *ret_addr = s;
        return parse_port(colon + 1, ret_port);
}

typedef struct Forward {
        const char *proto;
        const char *host_addr;
        uint16_t host_port;
        uint16_t guest_port; /* 0 for hostfwd_remove */
} Forward;

/* "[tcp|udp]:[HOSTADDR]:HOSTPORT[-[GUESTADDR]:GUESTPORT]" in place (QEMU's syntax); the guest part iff 'with_guest'. */
static int parse_forward(char *s, bool with_guest, Forward *ret) {
        char *colon = strchr(s, ':'), *dash;
        const char *guest_addr;
        int r;

        if (!colon)
                return log_error_errno(EINVAL, "'%s' has no protocol field (tcp:, udp: or :)", printable(s));
        *colon = 0;
        if (s[0] == 0 || streq(s, "tcp"))
                ret->proto = "tcp";
        else if (streq(s, "udp"))
                ret->proto = "udp";
        else
                return log_error_errno(EINVAL, "unknown protocol '%s' (tcp or udp)", printable(s));
        s = colon + 1;

        dash = strchr(s, '-');
        if (with_guest != !!dash)
                return log_error_errno(EINVAL,
                                       with_guest ? "no '-GUESTPORT' part" : "hostfwd_remove takes no guest part");
        if (dash)
                *dash = 0;
        r = split_endpoint(s, &ret->host_addr, &ret->host_port);
        if (r < 0)
                return log_error_errno(EINVAL, "bad host part: [HOSTADDR]:HOSTPORT, port 1-65535");
        if (!dash)
                return 0;
        r = split_endpoint(dash + 1, &guest_addr, &ret->guest_port);
        if (r < 0)
                return log_error_errno(EINVAL, "bad guest part: [GUESTADDR]:GUESTPORT, port 1-65535");
        if (guest_addr[0] && !streq(guest_addr, GUEST_ADDR))
                return log_error_errno(EINVAL, "the guest address can only be " GUEST_ADDR
                                               " (the address the guest gets by DHCP)");
        return 0;
}

/* The NIC named, or the only one when none is. */
static int pick_nic(const MonitorVmRef *vm, const char *given, char **ret) {
        _cleanup_(ids_freep) char **ids = NULL;
        char *id;

        if (given) {
                if (!id_is_valid(given))
                        return log_error_errno(EINVAL, "'%s' is not a NIC id", printable(given));
                id = strdup(given);
        } else {
                if (list_ids(vm, "Net", NET_IFACE, &ids) < 0)
                        return -EIO;
                if (!ids[0])
                        return log_error_errno(ENODEV, "the VM has no NIC");
                if (ids[1])
                        return log_error_errno(EINVAL,
                                               "the VM has several NICs: name one first (info network lists them)");
                id = strdup(ids[0]);
        }
        if (!id)
                return -ENOMEM;
        *ret = id;
        return 0;
}

/* A call on PATH/KIND/ID, its error shown as "WHAT: message" (an unknown id said plainly). */
static int device_call(const MonitorVmRef *vm, const char *what, const char *kind, const char *id, const char *iface,
                       const char *member, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        va_list ap;
        int r;

        if (!vm->owner)
                return log_error_errno(ENXIO, "%s: the VM is not on the bus", what);
        if (asprintf(&path, "%s/%s/%s", vm->path, kind, id) < 0)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(vm->bus, &m, vm->owner, path, iface, member);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call(vm->bus, m, vm->timeout, &error, NULL);
        if (r < 0) {
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE))
                        log_error("%s: the VM has no %s '%s' (info %s lists them)", what,
                                  streq(kind, "Block") ? "disk" : "NIC", id,
                                  streq(kind, "Block") ? "block" : "network");
                else
                        print_call_error(what, r, &error);
                return r;
        }
        return 0;
}

/* SIZE[k|K|M|G|T]: bytes, or binary multiples as QEMU reads them. */
static int parse_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -ERANGE;
        if (*end) {
                switch (*end) {
                case 'k':
                case 'K':
                        shift = 10;
                        break;
                case 'M':
                        shift = 20;
                        break;
                case 'G':
                        shift = 30;
                        break;
                case 'T':
                        shift = 40;
                        break;
                default:
                        return -EINVAL;
                }
                if (end[1])
                        return -EINVAL;
        }
        if (v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

static int run_block_resize(const MonitorVmRef *vm, char **argv, size_t argc) {
        uint64_t size;

        if (argc != 3)
                return EXIT_USAGE_DEVICES;
        if (!id_is_valid(argv[1])) {
                log_error("'%s' is not a disk id", printable(argv[1]));
                return EXIT_USAGE_DEVICES;
        }
        if (parse_size(argv[2], &size) < 0) {
                log_error("bad size '%s': bytes, or a number with k, M, G or T", printable(argv[2]));
                return EXIT_USAGE_DEVICES;
        }
        return device_call(vm, "block_resize", "Block", argv[1], BLOCK_IFACE, "Resize", "t", size) < 0 ? EXIT_FAILURE
                                                                                                       : EXIT_SUCCESS;
}

static int run_hostfwd(const MonitorVmRef *vm, char **argv, size_t argc, bool add) {
        _cleanup_free_ char *spec = NULL, *nic = NULL;
        Forward f = {};
        int r;

        if (argc != 2 && argc != 3)
                return EXIT_USAGE_DEVICES;
        spec = strdup(argv[argc - 1]);
        if (!spec)
                return EXIT_FAILURE;
        if (parse_forward(spec, add, &f) < 0)
                return EXIT_USAGE_DEVICES;
        r = pick_nic(vm, argc == 3 ? argv[1] : NULL, &nic);
        if (r == -EINVAL)
                return EXIT_USAGE_DEVICES;
        if (r < 0)
                return EXIT_FAILURE;
        if (add)
                r = device_call(vm, argv[0], "Net", nic, NET_IFACE, "AddForward", "ssqq", f.proto, f.host_addr,
                                f.host_port, f.guest_port);
        else
                r = device_call(vm, argv[0], "Net", nic, NET_IFACE, "RemoveForward", "ssq", f.proto, f.host_addr,
                                f.host_port);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int run_set_link(const MonitorVmRef *vm, char **argv, size_t argc) {
        bool up;

        if (argc != 3 || !(streq(argv[2], "on") || streq(argv[2], "off")))
                return EXIT_USAGE_DEVICES;
        if (!id_is_valid(argv[1])) {
                log_error("'%s' is not a NIC id", printable(argv[1]));
                return EXIT_USAGE_DEVICES;
        }
        up = streq(argv[2], "on");
        return device_call(vm, "set_link", "Net", argv[1], "org.freedesktop.DBus.Properties", "Set", "ssv", NET_IFACE,
                           "LinkUp", "b", (int) up) < 0
                       ? EXIT_FAILURE
                       : EXIT_SUCCESS;
}

int monitor_devices_run(const MonitorVmRef *vm, char **argv, size_t argc) {
        if (streq(argv[0], "block_resize"))
                return run_block_resize(vm, argv, argc);
        if (streq(argv[0], "hostfwd_add"))
                return run_hostfwd(vm, argv, argc, true);
        if (streq(argv[0], "hostfwd_remove"))
                return run_hostfwd(vm, argv, argc, false);
        if (streq(argv[0], "set_link"))
                return run_set_link(vm, argv, argc);
        return EXIT_USAGE_DEVICES;
}
