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
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "bus/bus.h"
#include "machine/chardev.h"
#include "machine/machine.h"
#include "net/user.h"
#include "macro.h"
#include "options.h"

#define EXIT_USAGE 2
#define HARD_STOP_TIMEOUT_USEC (10ULL * 1000000ULL)

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
        NetUser *nets[MACHINE_FREE_VIRTIO_SLOTS];       /* user networking of each NIC */
} Vm;

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

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Vm *vm = userdata;
        int r;

        request_clean_stop(vm);
        (void) sd_notifyf(false, "STOPPING=1\nSTATUS=VM %s: the guest is shutting down", vm->options.name);
        if (!vm->stop_timer) {
                r = sd_event_add_time_relative(vm->event, &vm->stop_timer, CLOCK_MONOTONIC, HARD_STOP_TIMEOUT_USEC, 0,
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
                return r;
        chardev_set_hooks(vm->serial, &hooks);

        if (strcmp(serial, "none") == 0)
                return 0;
        if (strncmp(serial, "file:", 5) == 0) {
                int fd = open(serial + 5, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
                if (fd < 0) {
                        fprintf(stderr, "orrery-vm: cannot open serial output file '%s': %s\n", serial + 5, strerror(errno));
                        return -errno;
                }
                return chardev_attach_file(vm->serial, fd);
        }

        /* stdio: a terminal goes into raw mode so that every key reaches the guest. */
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &vm->saved_termios) == 0) {
                struct termios raw = vm->saved_termios;
                cfmakeraw(&raw);
                raw.c_oflag |= OPOST | ONLCR;
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
                        vm->stdin_is_tty = true;
        }
        return chardev_attach_stdio(vm->serial, STDIN_FILENO, STDOUT_FILENO);
}

static int dump_dtb(Vm *vm) {
        _cleanup_fclose_ FILE *f = NULL;
        const void *fdt;
        size_t size;

        fdt = machine_device_tree(vm->machine, &size);
        f = fopen(vm->options.dump_dtb, "we");
        if (!f || fwrite(fdt, 1, size, f) != size || fflush(f) != 0) {
                fprintf(stderr, "orrery-vm: cannot write the device tree to '%s': %s\n", vm->options.dump_dtb, strerror(errno));
                return 1;
        }
        return 0;
}

static int run(Vm *vm) {
        MachineConfig config = {
                .name = vm->options.name,
                .bios = vm->options.bios,
                .kernel = vm->options.kernel,
                .initrd = vm->options.initrd,
                .append = vm->options.append,
                .memory = vm->options.memory,
                .fb_width = vm->options.fb_width,
                .fb_height = vm->options.fb_height,
                .no_reboot = vm->options.no_reboot,
                .drives = vm->options.drives,
                .n_drives = vm->options.n_drives,
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
        char error[512] = "";
        int r;

        r = machine_new(&config, &callbacks, &vm->machine, error, sizeof(error));
        if (r < 0) {
                fprintf(stderr, "orrery-vm: %s\n", error);
                return EXIT_USAGE;
        }
        if (vm->options.dump_dtb)
                return dump_dtb(vm);

        r = sd_event_new(&vm->event);
        if (r < 0)
                goto fail;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        r = sd_event_add_signal(vm->event, NULL, SIGTERM, on_terminate, vm);
        if (r >= 0)
                r = sd_event_add_signal(vm->event, NULL, SIGINT, on_terminate, vm);
        if (r >= 0)
                r = sd_event_add_signal(vm->event, NULL, SIGHUP, on_terminate, vm);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(vm->event, NULL, machine_notify_fd(vm->machine), EPOLLIN, on_machine_notify, vm);
        if (r < 0)
                goto fail;

        for (size_t i = 0; i < vm->options.n_nets; i++) {
                r = net_user_new(vm->event, &vm->options.nets[i], machine_nic(vm->machine, i), &vm->nets[i], error,
                                 sizeof(error));
                if (r < 0) {
                        fprintf(stderr, "orrery-vm: %s\n", error);
                        return EXIT_USAGE;
                }
        }

        r = setup_serial(vm);
        if (r < 0)
                goto fail;
        /* The agent's replies must arrive whole: its port is flow-controlled, never lossy. */
        ChardevBackend agent_backend = { .write_to_guest = agent_to_guest, .throttle = agent_throttle, .opaque = vm };
        r = chardev_new(vm->event, "guest_agent", "org.qemu.guest_agent.0", &agent_backend, &vm->agent);
        if (r < 0)
                goto fail;
        chardev_set_guest_open(vm->agent, false);

        if (!vm->options.no_bus) {
                VmBusConfig bus_config = {
                        .name = vm->options.name,
                        .address = vm->options.bus_address,
                        .machine = vm->machine,
                        .chardevs = { vm->serial, vm->agent },
                        .n_chardevs = 2,
                };
                r = vm_bus_new(vm->event, &bus_config, &vm->bus, error, sizeof(error));
                if (r < 0) {
                        restore_terminal(vm);
                        fprintf(stderr, "orrery-vm: %s\n", error);
                        return EXIT_USAGE;
                }
        }

        /* The CPU thread inherits the blocked signal mask: signals go to the event loop. */
        r = machine_start(vm->machine);
        if (r < 0)
                goto fail;
        /* Ready: the bus name is ours (Type=notify rather than Type=dbus, so
         * --no-bus and a manager that is not on the bus work the same). */
        vm->notified_state = machine_get_state(vm->machine);
        (void) sd_notifyf(false, "READY=1\nSTATUS=VM %s running", vm->options.name);

        r = sd_event_loop(vm->event);
        restore_terminal(vm);
        if (r < 0)
                goto fail;
        if (vm->hard_stopped) {
                /* Not a clean stop: say so, and let a service manager see a failure. */
                fprintf(stderr, "orrery-vm: the guest did not shut down within %llu s; stopped it\n",
                        HARD_STOP_TIMEOUT_USEC / 1000000ULL);
                return 1;
        }
        return r;

fail:
        restore_terminal(vm);
        fprintf(stderr, "orrery-vm: %s\n", strerror(-r));
        return 1;
}

int main(int argc, char *argv[]) {
        Vm vm = {};
        char error[512] = "";
        int r;

        r = options_parse(&vm.options, argc, argv, error, sizeof(error));
        if (r <= 0) {
                options_free(&vm.options);
                if (r == 0)
                        return 0; /* --help, --version */
                fprintf(stderr, "orrery-vm: %s\n", error);
                fprintf(stderr, "Try 'orrery-vm --help'.\n");
                return EXIT_USAGE;
        }

        r = run(&vm);

        if (vm.machine)
                machine_request(vm.machine, MACHINE_REQUEST_QUIT);
        vm.bus = vm_bus_free(vm.bus);
        for (size_t i = 0; i < ELEMENTSOF(vm.nets); i++)
                vm.nets[i] = net_user_free(vm.nets[i]);
        if (vm.machine)
                machine_free(vm.machine);
        if (vm.serial)
                chardev_flush(vm.serial);
        vm.stop_timer = sd_event_source_unref(vm.stop_timer);
        vm.serial = chardev_free(vm.serial);
        vm.agent = chardev_free(vm.agent);
        sd_event_unref(vm.event);
        options_free(&vm.options);
        return r;
}
