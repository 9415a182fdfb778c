/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "config.h"
#include "log.h"
#include "machine/machine.h"
#include "macro.h"
#include "options.h"
#include "vm-name.h"

bool vm_name_is_valid(const char *name) {
        return vm_name_check(name);
}

int parse_memory_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;
        unsigned shift = 20;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end) {
                switch (*end) {
                case 'B': case 'b': shift = 0; break;
                case 'K': case 'k': shift = 10; break;
                case 'M': case 'm': shift = 20; break;
                case 'G': case 'g': shift = 30; break;
                case 'T': case 't': shift = 40; break;
                default: return -EINVAL;
                }
                end++;
                if (*end == 'i')
                        end++;
                if (*end == 'B')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        if (v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

int parse_display(const char *s, uint32_t *ret_width, uint32_t *ret_height) {
        unsigned long w, h;
        char *end;

        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "none") == 0) {
                *ret_width = *ret_height = 0;
                return 0;
        }
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        w = strtoul(s, &end, 10);
        if (errno || *end != 'x' || end[1] < '0' || end[1] > '9')
                return -EINVAL;
        h = strtoul(end + 1, &end, 10);
        if (errno || *end)
                return -EINVAL;
        if (w < 16 || h < 16 || w > 8192 || h > 8192)
                return -ERANGE;
        *ret_width = (uint32_t) w;
        *ret_height = (uint32_t) h;
        return 0;
}

static void help(void) {
        printf("Usage: orrery-vm --name NAME [OPTIONS]\n"
               "\n"
               "Emulates a 64-bit RISC-V machine and boots Linux on it.\n"
               "\n"
               "  --name NAME          VM name: 1-64 of [A-Za-z0-9_-], starting with a letter or _\n"
               "  --bios FILE          M-mode firmware (default: %s)\n"
               "  --kernel FILE        RISC-V Linux Image (default: the default guest)\n"
               "  --initrd FILE        initramfs (default: the default guest's)\n"
               "  --append STR         kernel command line (default: \"%s\")\n"
               "  --memory SIZE        guest RAM, e.g. 512M or 2G (default: 512M)\n"
               "  --guest default|debian\n"
               "                       debian: boot the Debian image (meson compile debian-image)\n"
               "                       on this VM's copy of it, ssh forwarded from 127.0.0.1\n"
               "  --display WxH|none   framebuffer size (default: 1024x768)\n"
               "  --gpu simplefb|virtio\n"
               "                       how the guest gets the display: a firmware framebuffer\n"
               "                       (default), or a virtio-gpu (default with --guest debian)\n"
               "  --serial stdio|none|file:PATH\n"
               "                       where the serial console goes (default: stdio)\n"
               "  --no-reboot          exit when the guest reboots\n"
               "  --cpu-engine interp|jit\n"
               "                       how the CPU runs guest code: interpret it, or translate\n"
               "                       it to host code (x86-64 hosts only) (default: jit where\n"
               "                       it can run, else interp)\n"
               "  --debug              let the owner debug the guest over org.orrery.Debug1\n"
               "                       (orrery-gdbstub); off by default\n"
               "  --drive file=PATH[,id=ID][,readonly=on][,snapshot=on][,cache=writeback|none][,discard=on]\n"
               "                       a virtio-blk disk on a raw image (repeatable)\n"
               "  --net user[,id=ID][,mac=MAC][,hostfwd=tcp:127.0.0.1:HOSTPORT-:GUESTPORT]...[,restrict=on]\n"
               "                       a virtio-net NIC on user-mode networking (repeatable)\n"
               "  --bus ADDRESS        publish the VM on this D-Bus bus (default: the session bus)\n"
               "  --no-bus             do not publish the VM on any bus\n"
               "  --restore FILE|fd:N  start from a state saved by Machine1.Save (same options as when saved)\n"
               "  --restore-paused     with --restore: stay paused until Machine1.Resume\n"
               "  --restore-force      with --restore: accept disk images modified since the save\n"
               "  --incoming unix:PATH|tcp:127.0.0.1:PORT|fd:N\n"
               "                       wait for a live migration (Machine1.Migrate) and run the VM it brings\n"
               "  --on-stop poweroff|save\n"
               "                       what SIGTERM does: press the power button (default), or save the VM\n"
               "                       to the state directory and restore it on the next start\n"
               "  --stop-timeout SECONDS\n"
               "                       how long the guest gets to power off after SIGTERM before\n"
               "                       it is stopped hard, 1-3600 (default: 10; 25 with --guest debian)\n"
               "  --dump-dtb FILE      write the machine's device tree (DTB) to FILE and exit\n"
               "  --config FILE        read the VM's settings from FILE\n"
               "                       (default: ~/.config/orrery/vm/NAME.conf if it exists)\n"
               "  --no-config          read no configuration file\n"
               "  --log-level LEVEL    err, warning, notice, info (default) or debug\n"
               "                       (default: $ORRERY_LOG_LEVEL)\n"
               "  --bus-introspect     print the D-Bus interfaces the VM serves (XML) and exit\n"
               "  --help, --version\n"
               "\n"
               "On a terminal, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A.\n",
               ORRERY_DEFAULT_BIOS, OPTIONS_DEFAULT_APPEND);
}

static char *dir_of_self(void) {
        char buf[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
        char *slash;

        if (n <= 0)
                return NULL;
        buf[n] = 0;
        slash = strrchr(buf, '/');
        if (!slash)
                return NULL;
        *slash = 0;
        return strdup(buf);
}

/*
 * The default guest: $ORRERY_GUEST_DIR, else the build tree next to this
 * binary (build/emulator/../guest), else the installed datadir.
 */
static char *find_guest_file(const char *file) {
        _cleanup_free_ char *self = NULL;
        char *path = NULL;
        const char *env = getenv("ORRERY_GUEST_DIR");

        if (env && *env) {
                if (asprintf(&path, "%s/%s", env, file) < 0)
                        return NULL;
                return path;
        }
        self = dir_of_self();
        if (self) {
                if (asprintf(&path, "%s/../guest/%s", self, file) < 0)
                        return NULL;
                if (access(path, R_OK) == 0)
                        return path;
                free(path);
        }
        if (asprintf(&path, "%s/%s", ORRERY_GUEST_DATADIR, file) < 0)
                return NULL;
        return path;
}

static int set_string(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

enum {
        ARG_NAME = 0x100,
        ARG_BIOS,
        ARG_KERNEL,
        ARG_INITRD,
        ARG_APPEND,
        ARG_MEMORY,
        ARG_GUEST,
        ARG_DISPLAY,
        ARG_GPU,
        ARG_SERIAL,
        ARG_NO_REBOOT,
        ARG_CPU_ENGINE,
        ARG_DEBUG,
        ARG_DRIVE,
        ARG_NET,
        ARG_BUS,
        ARG_NO_BUS,
        ARG_DUMP_DTB,
        ARG_CONFIG,
        ARG_NO_CONFIG,
        ARG_LOG_LEVEL,
        ARG_HELP,
        ARG_VERSION,
        ARG_BUS_INTROSPECT,
        ARG_RESTORE,
        ARG_INCOMING,
        ARG_RESTORE_PAUSED,
        ARG_RESTORE_FORCE,
        ARG_ON_STOP,
        ARG_STOP_TIMEOUT,
        _ARG_MAX,
};

static const struct option longopts[] = {
        { "name", required_argument, NULL, ARG_NAME },
        { "bios", required_argument, NULL, ARG_BIOS },
        { "kernel", required_argument, NULL, ARG_KERNEL },
        { "initrd", required_argument, NULL, ARG_INITRD },
        { "append", required_argument, NULL, ARG_APPEND },
        { "memory", required_argument, NULL, ARG_MEMORY },
        { "guest", required_argument, NULL, ARG_GUEST },
        { "display", required_argument, NULL, ARG_DISPLAY },
        { "gpu", required_argument, NULL, ARG_GPU },
        { "serial", required_argument, NULL, ARG_SERIAL },
        { "no-reboot", no_argument, NULL, ARG_NO_REBOOT },
        { "cpu-engine", required_argument, NULL, ARG_CPU_ENGINE },
        { "debug", no_argument, NULL, ARG_DEBUG },
        { "drive", required_argument, NULL, ARG_DRIVE },
        { "net", required_argument, NULL, ARG_NET },
        { "bus", required_argument, NULL, ARG_BUS },
        { "no-bus", no_argument, NULL, ARG_NO_BUS },
        { "dump-dtb", required_argument, NULL, ARG_DUMP_DTB },
        { "config", required_argument, NULL, ARG_CONFIG },
        { "no-config", no_argument, NULL, ARG_NO_CONFIG },
        { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
        { "help", no_argument, NULL, ARG_HELP },
        { "version", no_argument, NULL, ARG_VERSION },
        { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
        { "restore", required_argument, NULL, ARG_RESTORE },
        { "incoming", required_argument, NULL, ARG_INCOMING },
        { "restore-paused", no_argument, NULL, ARG_RESTORE_PAUSED },
        { "restore-force", no_argument, NULL, ARG_RESTORE_FORCE },
        { "on-stop", required_argument, NULL, ARG_ON_STOP },
        { "stop-timeout", required_argument, NULL, ARG_STOP_TIMEOUT },
        {}
};

/* The options a VM's configuration file may set: the machine, not how this process runs. */
static const int config_keys[] = {
        ARG_BIOS, ARG_KERNEL, ARG_INITRD, ARG_APPEND, ARG_MEMORY, ARG_GUEST, ARG_DISPLAY, ARG_SERIAL, ARG_NO_REBOOT,
        ARG_CPU_ENGINE, ARG_DEBUG,
        ARG_DRIVE, ARG_NET, ARG_ON_STOP, ARG_GPU, ARG_STOP_TIMEOUT,
};

static const char *option_name(int id) {
        for (const struct option *l = longopts; l->name; l++)
                if (l->val == id)
                        return l->name;
        return "?";
}

/* A flag's value: NULL on the command line, yes/no/true/false/1/0 in the file. */
static int set_flag(bool *flag, const char *value, const char *label, const char *where) {
        if (!value || streq(value, "yes") || streq(value, "true") || streq(value, "1"))
                *flag = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
                *flag = false;
        else
                return log_error_errno(EINVAL, "%sinvalid %s '%s': expected yes or no", where, label, value);
        return 0;
}

static int add_drive(Options *o, const char *value, const char *where) {
        DriveSpec d, *a;
        int r;

        r = drive_spec_parse(value, where, &d);
        if (r < 0)
                return r;
        a = realloc(o->drives, sizeof(DriveSpec) * (o->n_drives + 1));
        if (!a) {
                drive_spec_done(&d);
                return log_oom();
        }
        o->drives = a;
        o->drives[o->n_drives++] = d;
        return 0;
}

static int add_net(Options *o, const char *value, const char *where) {
        NetSpec n, *a;
        int r;

        r = net_spec_parse(value, where, &n);
        if (r < 0)
                return r;
        a = realloc(o->nets, sizeof(NetSpec) * (o->n_nets + 1));
        if (!a) {
                net_spec_done(&n);
                return log_oom();
        }
        o->nets = a;
        o->nets[o->n_nets++] = n;
        return 0;
}

/* Whole seconds, 1 to OPTIONS_STOP_TIMEOUT_MAX_SEC. */
static int parse_stop_timeout(const char *value, uint64_t *ret_usec, const char *label, const char *where) {
        unsigned long long v;
        char *end;

        errno = 0;
        v = strtoull(value, &end, 10);
        if (!*value || *value == '-' || *end || errno != 0 || v < 1 || v > OPTIONS_STOP_TIMEOUT_MAX_SEC)
                return log_error_errno(EINVAL, "%sinvalid %s '%s': expected whole seconds from 1 to %u", where, label,
                                       value, OPTIONS_STOP_TIMEOUT_MAX_SEC);
        *ret_usec = (uint64_t) v * 1000000ULL;
        return 0;
}

/* The options that describe the machine (and may stand in a configuration file). */
static int option_set_machine(Options *o, int id, const char *value, const char *label, const char *where) {
        int r;

        switch (id) {
        case ARG_MEMORY:
                r = parse_memory_size(value, &o->memory);
                if (r == -ERANGE)
                        return log_error_errno(r, "%s%s '%s' is out of range", where, label, value);
                if (r < 0)
                        return log_error_errno(r, "%sinvalid %s '%s': expected a size such as 512M or 2G", where, label,
                                               value);
                o->memory_set = true;
                return 0;
        case ARG_GUEST:
                if (guest_preset_from_string(value, &o->guest) < 0)
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected default or debian", where, label,
                                               value);
                return 0;
        case ARG_DISPLAY:
                if (parse_display(value, &o->fb_width, &o->fb_height) < 0)
                        return log_error_errno(EINVAL,
                                               "%sinvalid %s '%s': expected WIDTHxHEIGHT between 16x16 and 8192x8192, or none",
                                               where, label, value);
                return 0;
        case ARG_GPU:
                if (streq(value, "virtio"))
                        o->gpu_virtio = true;
                else if (streq(value, "simplefb"))
                        o->gpu_virtio = false;
                else
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected simplefb or virtio", where, label,
                                               value);
                o->gpu_set = true;
                return 0;
        case ARG_SERIAL:
                if (!streq(value, "stdio") && !streq(value, "none") && !(strncmp(value, "file:", 5) == 0 && value[5]))
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected stdio, none or file:PATH", where,
                                               label, value);
                return set_string(&o->serial, value) < 0 ? log_oom() : 0;
        case ARG_NO_REBOOT:
                return set_flag(&o->no_reboot, value, label, where);
        case ARG_DEBUG:
                return set_flag(&o->debug, value, label, where);
        case ARG_CPU_ENGINE:
                if (streq(value, "jit"))
                        o->cpu_engine_jit = true;
                else if (streq(value, "interp"))
                        o->cpu_engine_jit = false;
                else
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected interp or jit", where, label,
                                               value);
                o->cpu_engine_fallback = false;
                return 0;
        case ARG_DRIVE:
                return add_drive(o, value, where);
        case ARG_NET:
                return add_net(o, value, where);
        case ARG_ON_STOP:
                if (streq(value, "save"))
                        o->on_stop_save = true;
                else if (streq(value, "poweroff"))
                        o->on_stop_save = false;
                else
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected poweroff or save", where, label,
                                               value);
                return 0;
        case ARG_STOP_TIMEOUT:
                return parse_stop_timeout(value, &o->stop_timeout_usec, label, where);
        default:
                return log_error_errno(EINVAL, "%sunexpected option", where);
        }
}

/*
 * Sets one option from the command line ("--memory") or the configuration
 * file ("memory"); label is how the error message names it, 'where'
 * what precedes it ("" or "FILE:LINE: "). Logs what is wrong. Flags take
 * value NULL on the command line, and yes/no/true/false/1/0 in the file.
 */
static int option_set(Options *o, int id, const char *value, const char *label, const char *where) {
        int r = 0;

        switch (id) {
        case ARG_NAME:
                if (!vm_name_is_valid(value))
                        return log_error_errno(EINVAL, "%sinvalid VM name '%s': use " VM_NAME_RULE, where, value);
                r = set_string(&o->name, value);
                break;
        case ARG_BIOS:
                r = set_string(&o->bios, value);
                break;
        case ARG_KERNEL:
                r = set_string(&o->kernel, value);
                break;
        case ARG_INITRD:
                r = set_string(&o->initrd, value);
                break;
        case ARG_APPEND:
                r = set_string(&o->append, value);
                break;
        case ARG_BUS:
                if (!*value)
                        return log_error_errno(EINVAL, "--bus needs a D-Bus address, e.g. unix:path=/run/user/1000/bus");
                r = set_string(&o->bus_address, value);
                break;
        case ARG_NO_BUS:
                o->no_bus = true;
                break;
        case ARG_DUMP_DTB:
                r = set_string(&o->dump_dtb, value);
                break;
        case ARG_CONFIG:
                r = set_string(&o->config, value);
                break;
        case ARG_RESTORE:
                if (!*value)
                        return log_error_errno(EINVAL, "--restore needs a file name or fd:N");
                r = set_string(&o->restore, value);
                break;
        case ARG_INCOMING:
                if (!*value)
                        return log_error_errno(EINVAL, "--incoming needs unix:PATH, tcp:HOST:PORT or fd:N");
                r = set_string(&o->incoming, value);
                break;
        case ARG_RESTORE_PAUSED:
                o->restore_paused = true;
                break;
        case ARG_RESTORE_FORCE:
                o->restore_force = true;
                break;
        case ARG_NO_CONFIG:
                o->no_config = true;
                break;
        case ARG_LOG_LEVEL:
                if (log_set_max_level_from_string(value) < 0)
                        return log_error_errno(EINVAL, "%sinvalid %s '%s': expected err, warning, notice, info or debug",
                                               where, label, value);
                break;
        default:
                return option_set_machine(o, id, value, label, where);
        }
        return r < 0 ? log_oom() : 0;
}

/* $XDG_CONFIG_HOME/orrery/vm/NAME.conf, or ~/.config/…; NULL if neither variable is set. */
static char *default_config_path(const char *name) {
        const char *base = getenv("XDG_CONFIG_HOME");
        const char *home = getenv("HOME");
        char *path = NULL;

        int r = -1;

        if (base && base[0] == '/')
                r = asprintf(&path, "%s/orrery/vm/%s.conf", base, name);
        else if (home && home[0] == '/')
                r = asprintf(&path, "%s/.config/orrery/vm/%s.conf", home, name);
        return r < 0 ? NULL : path;
}

static char *strip(char *s) {
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

/* A relative path in the file is relative to the file's directory. */
static int resolve_path(const char *config_path, const char *value, char **ret) {
        const char *slash = strrchr(config_path, '/');

        if (value[0] == '/' || !slash)
                *ret = strdup(value);
        else if (asprintf(ret, "%.*s/%s", (int) (slash - config_path), config_path, value) < 0)
                *ret = NULL;
        return *ret ? 0 : -ENOMEM;
}

/*
 * Reads the VM's configuration file: "key = value" lines with the names of
 * the command-line options, '#' comments, and an optional [vm] section
 * header. Options given on the command line win. A missing file is an
 * error only when it was named with --config.
 */
static int config_load(Options *o, const char *path, bool must_exist, const bool given[_ARG_MAX]) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        unsigned lineno = 0;
        int r;

        f = fopen(path, "re");
        if (!f) {
                int e = errno;

                if (e == ENOENT && !must_exist)
                        return 0;
                return log_error_errno(e, "cannot read configuration '%s': %m", path);
        }

        while (getline(&line, &size, f) >= 0) {
                _cleanup_free_ char *resolved = NULL;
                char *text = strip(line), *eq, *key, *value;
                char where[PATH_MAX + 32];
                int id = 0;

                lineno++;
                if (lineno > 10000 || strlen(text) > 4096) {
                        return log_error_errno(-E2BIG, "%s:%u: line too long or too many lines", path, lineno);
                }
                if (!*text || *text == '#' || *text == ';')
                        continue;
                if (*text == '[') {
                        size_t n = strlen(text);

                        if (n < 3 || text[n - 1] != ']') {
                                return log_error_errno(-EINVAL, "%s:%u: malformed section header '%s'", path, lineno,
                                                       text);
                        }
                        if (strcmp(text, "[vm]") != 0) {
                                return log_error_errno(-EINVAL, "%s:%u: unknown section %s (known: [vm])", path, lineno,
                                         text);
                        }
                        continue;
                }

                eq = strchr(text, '=');
                if (!eq) {
                        return log_error_errno(-EINVAL, "%s:%u: expected 'key = value', got '%s'", path, lineno, text);
                }
                *eq = 0;
                key = strip(text);
                value = strip(eq + 1);

                for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                        if (strcmp(key, option_name(config_keys[i])) == 0)
                                id = config_keys[i];
                if (id == 0) {
                        return log_error_errno(-EINVAL, "%s:%u: unknown key '%s' (known: bios, kernel, initrd, append, memory, guest, display, "
                                 "gpu, serial, no-reboot, cpu-engine, debug, drive, net, on-stop, stop-timeout)", path, lineno, key);
                }
                if (given[id])
                        continue;
                if (id == ARG_BIOS || id == ARG_KERNEL || id == ARG_INITRD) {
                        if (!*value) {
                                return log_error_errno(-EINVAL, "%s:%u: %s needs a file name", path, lineno, key);
                        }
                        r = resolve_path(path, value, &resolved);
                        if (r < 0) {
                                return log_oom();
                        }
                        value = resolved;
                }
                snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
                r = option_set(o, id, value, key, where);
                if (r < 0)
                        return r;
                if (id == ARG_DRIVE && o->drives[o->n_drives - 1].path[0] != '/') {
                        /* A relative image path is relative to the configuration file. */
                        DriveSpec *d = &o->drives[o->n_drives - 1];

                        r = resolve_path(path, d->path, &resolved);
                        if (r < 0)
                                return log_oom();
                        free(d->path);
                        d->path = TAKE_PTR(resolved);
                }
        }
        return 0;
}

/*
 * --guest debian: the Debian image's kernel and initrd, root on the first
 * disk, the VM's own copy of the image and a NIC forwarding ssh, for each
 * of these that the command line and the configuration left unset.
 */
static int guest_debian_fill_in(Options *o) {
        _cleanup_free_ char *dir = NULL, *pristine = NULL, *disk = NULL, *drive = NULL, *net = NULL;
        unsigned port;
        int r;

        if (o->guest != GUEST_PRESET_DEBIAN)
                return 0;
        dir = guest_debian_dir();
        if (!dir)
                return log_oom();
        if ((!o->kernel && asprintf(&o->kernel, "%s/vmlinux", dir) < 0) ||
            (!o->initrd && asprintf(&o->initrd, "%s/initrd.img", dir) < 0) ||
            (!o->append && set_string(&o->append, GUEST_DEBIAN_APPEND) < 0))
                return log_oom();
        if (!o->memory_set)
                o->memory = GUEST_DEBIAN_MEMORY;
        if (!o->stop_timeout_usec)
                o->stop_timeout_usec = GUEST_DEBIAN_STOP_TIMEOUT_USEC;
        /* Debian's kernel has no simple-framebuffer driver; its virtio_gpu module puts tty1 on the screen. */
        if (!o->gpu_set && o->fb_width > 0)
                o->gpu_virtio = true;

        if (o->n_drives == 0) {
                if (asprintf(&pristine, "%s/debian.img", dir) < 0)
                        return log_oom();
                r = guest_debian_disk(o->name, pristine, &disk);
                if (r < 0)
                        return r;
                if (asprintf(&drive, "file=%s", disk) < 0)
                        return log_oom();
                r = option_set(o, ARG_DRIVE, drive, "--guest debian's disk", "");
                if (r < 0)
                        return r;
        }
        if (o->n_nets == 0) {
                r = guest_free_local_port(&port);
                if (r < 0)
                        return log_error_errno(r, "cannot find a free port on 127.0.0.1 for ssh: %m");
                if (asprintf(&net, "user,hostfwd=tcp:127.0.0.1:%u-:22,restrict=on", port) < 0)
                        return log_oom();
                r = option_set(o, ARG_NET, net, "--guest debian's NIC", "");
                if (r < 0)
                        return r;
                log_notice("ssh to the Debian guest: ssh -p %u root@127.0.0.1", port);
        }
        return 0;
}

/*
 * Checks what only makes sense whole and fills in the defaults: Debian's
 * OpenSBI and the default guest. The machine's limits are checked here,
 * first, so that a bad --memory is named even when the default guest is
 * missing; describing the machine (--dump-dtb) needs no guest at all.
 */
static int options_fill_in(Options *o) {
        if (o->memory < MACHINE_MEMORY_MIN || o->memory > MACHINE_MEMORY_MAX)
                return log_error_errno(-ERANGE, "memory size %llu MiB out of range (%llu MiB .. %llu GiB)",
                                       (unsigned long long) (o->memory >> 20),
                                       (unsigned long long) (MACHINE_MEMORY_MIN >> 20),
                                       (unsigned long long) (MACHINE_MEMORY_MAX >> 30));

        if ((!o->bios && set_string(&o->bios, ORRERY_DEFAULT_BIOS) < 0) ||
            (!o->serial && set_string(&o->serial, "stdio") < 0) ||
            (!o->append && set_string(&o->append, OPTIONS_DEFAULT_APPEND) < 0))
                return log_oom();
        if (o->kernel)
                return 1;

        o->kernel = find_guest_file("Image");
        if (!o->initrd)
                o->initrd = find_guest_file("initramfs.cpio.gz");
        if (!o->kernel || !o->initrd)
                return log_oom();
        if (access(o->kernel, R_OK) >= 0)
                return 1;
        if (o->dump_dtb) {
                log_debug("The default guest '%s' is missing: describing the machine without it.", o->kernel);
                o->kernel = mfree(o->kernel);
                o->initrd = mfree(o->initrd);
                return 1;
        }
        if (errno != ENOENT)
                return log_error_errno(-errno, "cannot read the default guest '%s': %m", o->kernel);
        return log_error_errno(-ENOENT,
                               "the default guest is not built ('%s' missing): run 'meson compile -C build guest' "
                               "or pass --kernel", o->kernel);
}

int options_parse(Options *o, int argc, char *argv[]) {
        bool given[_ARG_MAX] = {};
        int c, r;

        *o = (Options) {
                .memory = OPTIONS_DEFAULT_MEMORY,
                .fb_width = 1024,
                .fb_height = 768,
        };
        /*
         * The JIT is the default, falling back to the interpreter where it
         * cannot run. A whole test run can pin the engine instead
         * (ORRERY_CPU_ENGINE=interp tools/check); then, as with
         * --cpu-engine, an engine that cannot start is an error.
         */
        o->cpu_engine_jit = true;
        o->cpu_engine_fallback = true;
        const char *engine = getenv("ORRERY_CPU_ENGINE");
        if (engine && (strcmp(engine, "jit") == 0 || strcmp(engine, "interp") == 0)) {
                o->cpu_engine_jit = strcmp(engine, "jit") == 0;
                o->cpu_engine_fallback = false;
        }

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) >= 0) {
                char label[32];

                switch (c) {
                case ARG_HELP:
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("orrery-vm %s\n", ORRERY_VERSION);
                        return 0;
                case ARG_BUS_INTROSPECT:
                        r = vm_bus_introspect(stdout);
                        if (r < 0)
                                return log_error_errno(r, "Cannot introspect the bus interfaces: %m");
                        return 0;
                case '?':
                        if (optopt)
                                return log_error_errno(-EINVAL, "option '%s' needs an argument", argv[optind - 1]);
                        return log_error_errno(-EINVAL, "unknown option '%s'", argv[optind - 1]);
                default:
                        snprintf(label, sizeof(label), "--%s", option_name(c));
                        r = option_set(o, c, optarg, label, "");
                        if (r < 0)
                                return r;
                        given[c] = true;
                }
        }
        if (optind < argc) {
                return log_error_errno(-EINVAL, "unexpected argument '%s'", argv[optind]);
        }
        if (!o->name) {
                return log_error_errno(-EINVAL, "--name NAME is required");
        }
        if (o->no_bus && o->bus_address) {
                return log_error_errno(-EINVAL, "--bus and --no-bus exclude each other");
        }
        if (o->no_config && o->config) {
                return log_error_errno(-EINVAL, "--config and --no-config exclude each other");
        }
        if (o->incoming && o->restore) {
                return log_error_errno(-EINVAL, "--incoming and --restore exclude each other");
        }
        if (!o->restore && (o->restore_paused || o->restore_force)) {
                return log_error_errno(-EINVAL, "--restore-paused and --restore-force need --restore");
        }

        if (o->config)
                r = config_load(o, o->config, true, given);
        else if (!o->no_config) {
                _cleanup_free_ char *path = default_config_path(o->name);

                r = path ? config_load(o, path, false, given) : 0;
        } else
                r = 0;
        if (r < 0)
                return r;

        r = guest_debian_fill_in(o);
        if (r < 0)
                return r;

        if (o->gpu_virtio && o->fb_width == 0)
                return log_error_errno(-EINVAL, "--gpu virtio needs a display (--display WxH, not none)");

        r = drive_specs_finish(o->drives, o->n_drives);
        if (r < 0)
                return r;
        r = net_specs_finish(o->nets, o->n_nets, o->name);
        if (r < 0)
                return r;

        return options_fill_in(o);
}

void options_free(Options *o) {
        free(o->name);
        free(o->bios);
        free(o->kernel);
        free(o->initrd);
        free(o->append);
        free(o->serial);
        free(o->bus_address);
        free(o->dump_dtb);
        free(o->config);
        free(o->restore);
        free(o->incoming);
        for (size_t i = 0; i < o->n_drives; i++)
                drive_spec_done(&o->drives[i]);
        free(o->drives);
        for (size_t i = 0; i < o->n_nets; i++)
                net_spec_done(&o->nets[i]);
        free(o->nets);
        *o = (Options) {};
}
