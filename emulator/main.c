/* SPDX-License-Identifier: MIT */

/*
 * orrery-vm: one process per VM. Parses the command line, builds the
 * machine, and runs the event loop (sd-event) that owns everything but the
 * CPU: signals, the serial console on stdio, and machine state changes.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "bus/bus.h"
#include "log.h"
#include "machine/boot.h"
#include "machine/chardev.h"
#include "machine/machine.h"
#include "migration/savevm.h"
#include "net/user.h"
#include "macro.h"
#include "options.h"
#include "migration/incoming.h"

#define EXIT_USAGE 2
#define HARD_STOP_TIMEOUT_USEC (10ULL * 1000000ULL)
/* What the hard stop after the guest's time may take: the CPU thread stopping, disks flushed. */
#define STOP_MARGIN_USEC (5ULL * 1000000ULL)

/* More than any device tree this machine builds: what boot planning reserves for it. */
#define FDT_SIZE_BOUND (64U * 1024U)

typedef struct Vm {
        Options options;
        Machine *machine;
        sd_event *event;
        sd_event_source *stop_timer;
        Chardev *serial;
        Chardev *agent;                 /* the guest agent's virtio-console port */
        VmBus *bus;

        bool stdin_is_tty;
        struct termios saved_termios;
        bool escape_pending;            /* Ctrl-A seen on the terminal */

        bool stopping;
        MachineState notified_state;    /* the last STATUS= sent to the service manager */
        bool hard_stopped;              /* the guest ignored the power button until the deadline */
        char *managed_save;             /* on-stop=save: where SIGTERM saves the VM and the next start restores it */
        NetUser *nets[MACHINE_FREE_VIRTIO_SLOTS];       /* user networking of each NIC */
        BlockImage *images[MACHINE_FREE_VIRTIO_SLOTS];  /* each --drive's image, open and locked */
        Incoming *incoming;             /* --incoming: until the migrated VM runs here */
} Vm;

/* How long the guest gets to power off after SIGTERM pressed its power button. */
static uint64_t hard_stop_timeout_usec(const Vm *vm) {
        return vm->options.stop_timeout_usec ?: HARD_STOP_TIMEOUT_USEC;
}

static void serial_output(void *opaque, const uint8_t *buf, size_t n) {
        Vm *vm = opaque;
        chardev_guest_output(vm->serial, buf, n);
}

static void serial_room(void *opaque) {
        Vm *vm = opaque;
        chardev_guest_room(vm->serial);
}

static void agent_output(void *opaque, const uint8_t *buf, size_t n) {
        Vm *vm = opaque;
        /* The machine may report before the chardev exists (its reset at creation). */
        if (vm->agent)
                chardev_guest_output(vm->agent, buf, n);
}

static void agent_open(void *opaque, bool open) {
        Vm *vm = opaque;
        if (vm->agent)
                chardev_set_guest_open(vm->agent, open);
}

static void agent_room(void *opaque) {
        Vm *vm = opaque;
        if (vm->agent)
                chardev_guest_room(vm->agent);
}

static void agent_throttle(void *opaque, bool throttle) {
        Vm *vm = opaque;
        machine_agent_throttle(vm->machine, throttle);
}

static size_t agent_to_guest(void *opaque, const uint8_t *buf, size_t n) {
        Vm *vm = opaque;
        return machine_agent_input(vm->machine, buf, n);
}

static size_t serial_to_guest(void *opaque, const uint8_t *buf, size_t n) {
        Vm *vm = opaque;
        return machine_serial_input(vm->machine, buf, n);
}

/* Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A, as in QEMU. Only on a terminal. */
static size_t filter_stdin(void *opaque, uint8_t *buf, size_t n) {
        Vm *vm = opaque;
        size_t out = 0;

        if (!vm->stdin_is_tty)
                return n;
        for (size_t i = 0; i < n; i++) {
                uint8_t c = buf[i];
                if (vm->escape_pending) {
                        vm->escape_pending = false;
                        if (c == 'x' || c == 'X') {
                                machine_request(vm->machine, MACHINE_REQUEST_QUIT);
                                continue;
                        }
                        if (c != 0x01)
                                continue;
                } else if (c == 0x01) {
                        vm->escape_pending = true;
                        continue;
                }
                buf[out++] = c;
        }
        return out;
}

static void restore_terminal(Vm *vm) {
        if (vm->stdin_is_tty)
                tcsetattr(STDIN_FILENO, TCSADRAIN, &vm->saved_termios);
        vm->stdin_is_tty = false;
}

static void request_clean_stop(Vm *vm) {
        if (vm->stopping) {
                /* Second request: stop now. */
                machine_request(vm->machine, MACHINE_REQUEST_QUIT);
                return;
        }
        vm->stopping = true;
        /* Ask the guest to shut down cleanly; a guest without a keyboard driver yet is stopped at once. */
        if (machine_power_button(vm->machine) < 0)
                machine_request(vm->machine, MACHINE_REQUEST_QUIT);
}

/* For systemctl status; a no-op unless started by systemd ($NOTIFY_SOCKET). */
static void notify_status(Vm *vm) {
        static const char *const names[] = {
                [MACHINE_RUNNING] = "running", [MACHINE_PAUSED] = "paused", [MACHINE_SHUTDOWN] = "shut down",
        };
        MachineState state = machine_get_state(vm->machine);

        if (state == vm->notified_state)
                return;
        vm->notified_state = state;
        (void) sd_notifyf(false, "STATUS=VM %s %s%s", vm->options.name,
                          (size_t) state < ELEMENTSOF(names) && names[state] ? names[state] : "in an unknown state",
                          vm->stopping && state == MACHINE_RUNNING ? ", shutting down" : "");
}

static int on_machine_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;

        machine_notify_drain(vm->machine);
        if (vm->bus)
                vm_bus_machine_changed(vm->bus);
        notify_status(vm);

        if (machine_get_state(vm->machine) == MACHINE_SHUTDOWN)
                return sd_event_exit(vm->event, machine_exit_code(vm->machine));
        return 0;
}

static int on_hard_stop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;
        vm->hard_stopped = true;
        machine_request(vm->machine, MACHINE_REQUEST_QUIT);
        return 0;
}

/*
 * on-stop=save: the guest is paused and written to NAME.save.tmp, renamed
 * into place once complete. On failure the guest runs on and is shut down
 * as without on-stop=save.
 */
static int managed_save(Vm *vm) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        char error[1024] = "";
        uint64_t bytes = 0;
        int r;

        (void) sd_notifyf(false, "STOPPING=1\nSTATUS=VM %s: saving to %s", vm->options.name, vm->managed_save);
        if (asprintf(&tmp, "%s.tmp", vm->managed_save) < 0)
                return log_oom();
        r = machine_request_wait(vm->machine, MACHINE_REQUEST_PAUSE, HARD_STOP_TIMEOUT_USEC);
        if (r < 0 || machine_get_state(vm->machine) != MACHINE_PAUSED)
                return log_error_errno(r < 0 ? r : -ESHUTDOWN, "Cannot pause VM '%s' to save it; shutting it down",
                                       vm->options.name);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                r = log_error_errno(errno, "Cannot create '%s' to save VM '%s': %m", tmp, vm->options.name);
        else {
                r = savevm_write(vm->machine, fd, &bytes, error, sizeof(error));
                if (r < 0)
                        log_error_errno(r, "Cannot save VM '%s': %s", vm->options.name, error);
                else if (fsync(fd) < 0 || rename(tmp, vm->managed_save) < 0)
                        r = log_error_errno(errno, "Cannot write '%s': %m", vm->managed_save);
        }
        if (r < 0) {
                if (fd >= 0)
                        (void) unlink(tmp);
                log_notice("Shutting VM '%s' down instead of saving it", vm->options.name);
                machine_request(vm->machine, MACHINE_REQUEST_RESUME);
                return r;
        }
        log_info("Saved VM '%s' to %s (%llu MiB); the next start restores it", vm->options.name, vm->managed_save,
                 (unsigned long long) (bytes >> 20));
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Vm *vm = userdata;
        int r;

        log_info("Stop of VM '%s' requested by signal %s from pid %u", vm->options.name, strsignal((int) si->ssi_signo),
                 si->ssi_pid);
        if (vm->managed_save && !vm->stopping && managed_save(vm) >= 0) {
                machine_request(vm->machine, MACHINE_REQUEST_QUIT);
                return 0;
        }
        request_clean_stop(vm);
        /*
         * The service manager's own stop timeout (TimeoutStopSec=) would kill
         * us before a longer --stop-timeout ran out: ask it for the guest's
         * time and a little more for the hard stop itself.
         */
        (void) sd_notifyf(false, "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=VM %s: the guest is shutting down",
                          (unsigned long long) (hard_stop_timeout_usec(vm) + STOP_MARGIN_USEC), vm->options.name);
        if (!vm->stop_timer) {
                r = sd_event_add_time_relative(vm->event, &vm->stop_timer, CLOCK_MONOTONIC, hard_stop_timeout_usec(vm), 0,
                                               on_hard_stop_timer, vm);
                if (r < 0)
                        machine_request(vm->machine, MACHINE_REQUEST_QUIT);
        }
        return 0;
}

static int setup_serial(Vm *vm) {
        const char *serial = vm->options.serial;
        ChardevBackend backend = { .write_to_guest = serial_to_guest, .opaque = vm };
        ChardevHooks hooks = { .filter_stdin = filter_stdin, .opaque = vm };
        int r;

        r = chardev_new(vm->event, "serial0", "serial0", &backend, &vm->serial);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the serial console: %m");
        chardev_set_hooks(vm->serial, &hooks);

        if (streq(serial, "none"))
                return 0;
        if (strncmp(serial, "file:", 5) == 0) {
                int fd = open(serial + 5, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to open serial output file '%s': %m", serial + 5);
                r = chardev_attach_file(vm->serial, fd);
                if (r < 0)
                        return log_error_errno(r, "Failed to attach the serial console to '%s': %m", serial + 5);
                return 0;
        }

        /* stdio: a terminal goes into raw mode so that every key reaches the guest. */
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &vm->saved_termios) == 0) {
                struct termios raw = vm->saved_termios;
                cfmakeraw(&raw);
                raw.c_oflag |= OPOST | ONLCR;
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
                        vm->stdin_is_tty = true;
        }
        r = chardev_attach_stdio(vm->serial, STDIN_FILENO, STDOUT_FILENO);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the serial console to stdio: %m");
        return 0;
}

static int setup_agent_channel(Vm *vm) {
        /* The agent's replies must arrive whole: its port is flow-controlled, never lossy. */
        ChardevBackend backend = { .write_to_guest = agent_to_guest, .throttle = agent_throttle, .opaque = vm };
        int r;

        r = chardev_new(vm->event, "guest_agent", "org.qemu.guest_agent.0", &backend, &vm->agent);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the guest agent's channel: %m");
        chardev_set_guest_open(vm->agent, false);
        return 0;
}

static int dump_dtb(Vm *vm) {
        _cleanup_fclose_ FILE *f = NULL;
        const void *fdt;
        size_t size;

        fdt = machine_device_tree(vm->machine, &size);
        f = fopen(vm->options.dump_dtb, "we");
        if (!f || fwrite(fdt, 1, size, f) != size || fflush(f) != 0)
                return log_error_errno(errno, "Failed to write the device tree to '%s': %m", vm->options.dump_dtb);
        return 0;
}

/* Tells the person which boot image is wrong and how; r is a boot_check_*() error. */
static int log_image_error(int r, const char *what, const char *path, uint64_t memory) {
        switch (r) {
        case -EISDIR:
        case -EBADFD:
                return log_error_errno(r, "%s '%s' is not a regular file", what, path);
        case -ENODATA:
                return log_error_errno(r, "%s '%s' is empty", what, path);
        case -EFBIG:
                return log_error_errno(r, "%s '%s' does not fit in %llu MiB of guest RAM; give more --memory", what,
                                       path, (unsigned long long) (memory >> 20));
        case -ENOEXEC:
                return log_error_errno(r, "%s '%s' is not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 56)",
                                       what, path);
        default:
                return log_error_errno(r, "cannot open %s '%s': %m", what, path);
        }
}

/*
 * Checks the boot images before the machine is built, where it is known
 * which file is which, so that bad input gets one line that names the file
 * and the fix. The machine checks again (the files may change meanwhile)
 * but only returns an error code.
 */
static int check_boot_images(const Options *o) {
        uint64_t bios = 0, kernel = 0, initrd = 0;
        BootLayout layout;
        int r;

        if (!o->kernel)
                return 0;       /* --dump-dtb without a guest */
        r = boot_check_file(o->bios, o->memory, &bios);
        if (r < 0)
                return log_image_error(r, "firmware", o->bios, o->memory);
        r = boot_check_kernel_file(o->kernel, o->memory, &kernel);
        if (r < 0)
                return log_image_error(r, "kernel", o->kernel, o->memory);
        if (o->initrd) {
                r = boot_check_file(o->initrd, o->memory, &initrd);
                if (r < 0)
                        return log_image_error(r, "initrd", o->initrd, o->memory);
        }

        r = boot_plan(&layout, o->memory, bios, kernel, initrd, FDT_SIZE_BOUND);
        if (r == -ENOSPC)
                return log_error_errno(r, "initrd '%s' (%llu MiB) does not fit in %llu MiB of RAM above the kernel; "
                                       "give more --memory", o->initrd, (unsigned long long) (initrd >> 20),
                                       (unsigned long long) (o->memory >> 20));
        if (r < 0)
                return log_error_errno(r, "kernel '%s' (%llu MiB in memory) does not fit in %llu MiB of RAM; "
                                       "give more --memory", o->kernel, (unsigned long long) (kernel >> 20),
                                       (unsigned long long) (o->memory >> 20));
        return 0;
}

/* Opens and locks every --drive image before the machine exists: a refusal is one line naming its cause. */
static int open_drives(Vm *vm) {
        const Options *o = &vm->options;
        char message[512];
        int r;

        size_t slots = MACHINE_FREE_VIRTIO_SLOTS - (o->gpu_virtio ? 1 : 0);
        if (o->n_drives + o->n_nets > slots)
                return log_error_errno(-E2BIG, "too many drives and NICs: %zu (at most %zu together%s)",
                                       o->n_drives + o->n_nets, slots, o->gpu_virtio ? " with --gpu virtio" : "");
        for (size_t i = 0; i < o->n_drives; i++) {
                const DriveSpec *d = &o->drives[i];

                /* A migration's destination takes the locks only once the source let go of them. */
                r = vm->options.incoming ? drive_open_unlocked(d, &vm->images[i], message, sizeof(message))
                                         : drive_open(d, &vm->images[i], message, sizeof(message));
                if (r < 0)
                        return log_error_errno(r, "%s", message);
                if (d->cache == BLOCK_CACHE_NONE && !d->snapshot && !block_image_direct(vm->images[i]))
                        log_notice("drive '%s': the file system of '%s' refuses O_DIRECT; cache=none uses the page cache",
                                   d->id, d->path);
        }
        return 0;
}

/* User networking for every NIC, on the event loop; a host forward that cannot listen is bad input. */
static int setup_nets(Vm *vm) {
        char message[512];
        int r;

        for (size_t i = 0; i < vm->options.n_nets; i++) {
                r = net_user_new(vm->event, &vm->options.nets[i], machine_nic(vm->machine, i), &vm->nets[i], message,
                                 sizeof(message));
                if (r < 0)
                        return log_error_errno(r, "%s", message);
        }
        return 0;
}

static int create_machine(Vm *vm) {
        MachineConfig config = {
                .name = vm->options.name,
                .bios = vm->options.bios,
                .kernel = vm->options.kernel,
                .initrd = vm->options.initrd,
                .append = vm->options.append,
                .memory = vm->options.memory,
                .fb_width = vm->options.fb_width,
                .fb_height = vm->options.fb_height,
                .gpu_virtio = vm->options.gpu_virtio,
                .no_reboot = vm->options.no_reboot,
                .cpu_engine_jit = vm->options.cpu_engine_jit,
                .cpu_engine_fallback = vm->options.cpu_engine_fallback,
                .drives = vm->options.drives,
                .n_drives = vm->options.n_drives,
                .images = vm->images,
                .nets = vm->options.nets,
                .n_nets = vm->options.n_nets,
        };
        MachineCallbacks callbacks = {
                .serial_output = serial_output,
                .serial_room = serial_room,
                .agent_output = agent_output,
                .agent_open = agent_open,
                .agent_room = agent_room,
                .opaque = vm,
        };
        int r;

        r = check_boot_images(&vm->options);
        if (r < 0)
                return r;
        r = open_drives(vm);
        if (r < 0)
                return r;
        r = machine_new(&config, &callbacks, &vm->machine);
        if (r < 0)
                return log_error_errno(r, "Failed to create the machine (%llu MiB of RAM): %m",
                                       (unsigned long long) (vm->options.memory >> 20));
        return 0;
}

static int setup_event_loop(Vm *vm) {
        static const int signals[] = { SIGTERM, SIGINT, SIGHUP };
        sigset_t mask;
        int r;

        r = sd_event_new(&vm->event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        /* The CPU thread inherits the blocked signal mask: signals go to the event loop. */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(vm->event, NULL, signals[i], on_terminate, vm);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch signal %s: %m", strsignal(signals[i]));
        }
        r = sd_event_add_io(vm->event, NULL, machine_notify_fd(vm->machine), EPOLLIN, on_machine_notify, vm);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the machine: %m");
        return 0;
}

static int setup_bus(Vm *vm) {
        VmBusConfig bus_config = {
                .name = vm->options.name,
                .address = vm->options.bus_address,
                .machine = vm->machine,
                .chardevs = { vm->serial, vm->agent },
                .n_chardevs = 2,
                .nets = vm->nets,
                .n_nets = vm->options.n_nets,
                .debug = vm->options.debug,
                .take_over = vm->options.incoming != NULL,
        };

        if (vm->options.no_bus)
                return 0;
        /* vm_bus_new() says what failed, with its context. */
        return vm_bus_new(vm->event, &bus_config, &vm->bus);
}

/* --restore: the saved state replaces the freshly built machine's, or nothing does. */
static int restore_machine(Vm *vm, const char *hint) {
        SavevmBlob blob = {};
        char error[1024] = "";
        int r;

        r = savevm_blob_read(vm->options.restore, savevm_size_bound(vm->options.memory), &blob, error, sizeof(error));
        if (r >= 0)
                r = savevm_load(vm->machine, blob.data, blob.size, vm->options.restore_force, error, sizeof(error));
        savevm_blob_done(&blob);
        if (r < 0)
                return log_error_errno(r, "cannot restore VM '%s' from '%s': %s%s", vm->options.name,
                                       vm->options.restore, error, hint);
        machine_set_start_paused(vm->machine, vm->options.restore_paused);
        log_info("Restored VM '%s' from '%s'%s", vm->options.name, vm->options.restore,
                 vm->options.restore_paused ? " (paused)" : "");
        return 0;
}

/*
 * on-stop=save: NAME.save in $STATE_DIRECTORY when a unit sets one, else in
 * ${XDG_STATE_HOME:-~/.local/state}/orrery (what orrery-vm@.service opens). A save found there is
 * restored, then deleted: the guest runs on from it, and the next stop
 * writes a new one.
 */
static int setup_managed_save(Vm *vm) {
        const char *dir = getenv("STATE_DIRECTORY"), *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        _cleanup_free_ char *fallback = NULL;
        int r;

        if (dir && strchr(dir, ':'))
                dir = NULL;     /* several directories: take the default */
        if (!dir || dir[0] != '/') {
                if (state && state[0] == '/')
                        r = asprintf(&fallback, "%s/orrery", state);
                else if (home && home[0] == '/')
                        r = asprintf(&fallback, "%s/.local/state/orrery", home);
                else
                        return log_error_errno(-EINVAL, "on-stop=save needs $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME");
                if (r < 0)
                        return log_oom();
                /* Like mkdir -p: a fresh home may have no ~/.local/state yet. */
                for (char *slash = strchr(fallback + 1, '/');; slash = strchr(slash + 1, '/')) {
                        if (slash)
                                *slash = 0;
                        (void) mkdir(fallback, 0700);
                        if (!slash)
                                break;
                        *slash = '/';
                }
                dir = fallback;
        }
        if (asprintf(&vm->managed_save, "%s/%s.save", dir, vm->options.name) < 0)
                return log_oom();
        if (vm->options.restore || access(vm->managed_save, F_OK) < 0)
                return 0;

        vm->options.restore = strdup(vm->managed_save);
        if (!vm->options.restore)
                return log_oom();
        r = restore_machine(vm, "; remove the file to boot the VM afresh");
        if (r < 0)
                return r;
        if (unlink(vm->managed_save) < 0)
                return log_error_errno(errno, "Cannot remove '%s' after restoring it: %m", vm->managed_save);
        return 0;
}

static int start_guest(Vm *vm) {
        int r;

        /*
         * A restored or migrated-in agent port carries the throttle of the
         * process that saved it; this one's chardev is empty, and would never
         * lift it.
         */
        if (vm->agent)
                chardev_assert_flow(vm->agent);
        r = machine_start(vm->machine);
        if (r < 0)
                return log_error_errno(r, "Failed to start the CPU thread: %m");
        /* Ready: the bus name is ours (Type=notify rather than Type=dbus, so
         * --no-bus and a manager that is not on the bus work the same). */
        vm->notified_state = machine_get_state(vm->machine);
        (void) sd_notifyf(false, "READY=1\nSTATUS=VM %s %s", vm->options.name,
                          vm->notified_state == MACHINE_PAUSED ? "paused" : "running");
        return 0;
}

/*
 * --incoming: the stream is loaded and the source let go. Only now do the
 * host forwards listen and the bus name move here (in one step, replacing
 * the source), and the guest run; then the source is told, and exits.
 */
static void on_incoming_done(Incoming *in, int r, const char *error, void *userdata) {
        Vm *vm = userdata;

        if (r < 0) {
                log_error_errno(r, "Migration of VM '%s' refused: %s", vm->options.name, error ? error : "unknown error");
                (void) sd_event_exit(vm->event, EXIT_USAGE);
                return;
        }
        if (setup_nets(vm) < 0 || setup_bus(vm) < 0 || start_guest(vm) < 0) {
                (void) sd_event_exit(vm->event, EXIT_FAILURE);
                return;
        }
        incoming_running(in);
        log_info("VM '%s' migrated in from %s and running here", vm->options.name, vm->options.incoming);
}

static int wait_incoming(Vm *vm) {
        char error[512] = "";
        int r;

        r = incoming_new(vm->event, vm->machine, vm->options.incoming, on_incoming_done, vm, &vm->incoming, error,
                         sizeof(error));
        if (r < 0)
                return log_error_errno(r, "Cannot wait for VM '%s' to migrate in: %s", vm->options.name, error);
        log_info("VM '%s' waits for a migration on %s", vm->options.name, vm->options.incoming);
        return 0;
}

/* Starts the guest (or waits for it to migrate in) and runs the event loop until the VM stops; returns the exit status. */
static int run_vm(Vm *vm) {
        int r;

        if (!vm->options.incoming) {
                r = start_guest(vm);
                if (r < 0)
                        return r;
        }
        r = sd_event_loop(vm->event);
        restore_terminal(vm);
        if (r < 0)
                return log_error_errno(r, "Failed to run the event loop: %m");
        if (vm->hard_stopped) {
                /* Not a clean stop: say so, and let a service manager see a failure. */
                log_error("The guest did not shut down within %llu s; stopped it.",
                          (unsigned long long) (hard_stop_timeout_usec(vm) / 1000000ULL));
                return EXIT_FAILURE;
        }
        return r;
}

/* Returns the process's exit status: 0 or the guest's, EXIT_USAGE for bad input, EXIT_FAILURE otherwise. */
static int run(Vm *vm) {
        int r;

        if (create_machine(vm) < 0)
                return EXIT_USAGE;
        if (vm->options.dump_dtb)
                return dump_dtb(vm) < 0 ? EXIT_FAILURE : 0;
        if (vm->options.restore && restore_machine(vm, "") < 0)
                return EXIT_USAGE;
        if (vm->options.on_stop_save && setup_managed_save(vm) < 0)
                return EXIT_USAGE;

        r = setup_event_loop(vm);
        if (r >= 0)
                r = setup_serial(vm);
        if (r >= 0)
                r = setup_agent_channel(vm);
        if (r < 0) {
                restore_terminal(vm);
                return EXIT_FAILURE;
        }
        if (vm->options.incoming) {
                if (wait_incoming(vm) < 0) {
                        restore_terminal(vm);
                        return EXIT_USAGE;
                }
        } else if (setup_nets(vm) < 0 || setup_bus(vm) < 0) {
                restore_terminal(vm);
                return EXIT_USAGE;
        }
        return run_vm(vm);
}

static void vm_done(Vm *vm) {
        if (vm->machine)
                machine_request(vm->machine, MACHINE_REQUEST_QUIT);
        vm->incoming = incoming_free(vm->incoming);
        vm->bus = vm_bus_free(vm->bus);
        for (size_t i = 0; i < ELEMENTSOF(vm->nets); i++)
                vm->nets[i] = net_user_free(vm->nets[i]);
        if (vm->machine)
                machine_free(vm->machine);
        /* After the machine: the disks' workers are joined. */
        for (size_t i = 0; i < ELEMENTSOF(vm->images); i++)
                vm->images[i] = block_image_close(vm->images[i]);
        if (vm->serial)
                chardev_flush(vm->serial);
        vm->stop_timer = sd_event_source_unref(vm->stop_timer);
        vm->serial = chardev_free(vm->serial);
        vm->agent = chardev_free(vm->agent);
        sd_event_unref(vm->event);
        free(vm->managed_save);
        options_free(&vm->options);
}

int main(int argc, char *argv[]) {
        Vm vm = {};
        int r;

        log_setup("orrery-vm");
        r = options_parse(&vm.options, argc, argv);
        if (r <= 0) {
                options_free(&vm.options);
                if (r == 0)
                        return 0; /* --help, --version */
                /* A hint for a person at a terminal, not for a unit's journal. */
                if (isatty(STDERR_FILENO))
                        log_info("Try 'orrery-vm --help'.");
                return EXIT_USAGE;
        }

        r = run(&vm);
        vm_done(&vm);
        return r;
}
