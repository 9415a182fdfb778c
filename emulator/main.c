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
#include <systemd/sd-event.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "machine/machine.h"
#include "macro.h"
#include "options.h"

#define EXIT_USAGE 2
#define HARD_STOP_TIMEOUT_USEC (10ULL * 1000000ULL)

typedef struct Vm {
        Options options;
        Machine *machine;
        sd_event *event;
        sd_event_source *stdin_source;
        sd_event_source *stop_timer;

        int serial_out_fd;
        bool stdin_is_tty;
        struct termios saved_termios;
        bool escape_pending;            /* Ctrl-A seen on the terminal */

        uint8_t pending_input[256];     /* held back by a full UART FIFO */
        size_t pending_len;

        bool stopping;
        int exit_code;
} Vm;

static void serial_output(void *opaque, const uint8_t *buf, size_t n) {
        Vm *vm = opaque;

        while (n > 0 && vm->serial_out_fd >= 0) {
                ssize_t w = write(vm->serial_out_fd, buf, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Nobody listens any more: drop output rather than stall the guest. */
                        return;
                }
                buf += w;
                n -= (size_t) w;
        }
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
        /*
         * A power-key press needs an input device; until the guest has one the
         * stop is a hard one.
         */
        machine_request(vm->machine, MACHINE_REQUEST_QUIT);
}

static void feed_serial(Vm *vm) {
        size_t n;

        if (vm->pending_len == 0)
                return;
        n = machine_serial_input(vm->machine, vm->pending_input, vm->pending_len);
        memmove(vm->pending_input, vm->pending_input + n, vm->pending_len - n);
        vm->pending_len -= n;
        /* Stop reading stdin while the guest has not drained what we have. */
        if (vm->stdin_source)
                sd_event_source_set_enabled(vm->stdin_source, vm->pending_len ? SD_EVENT_OFF : SD_EVENT_ON);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;
        uint8_t buf[sizeof(vm->pending_input)];
        ssize_t n;

        n = read(fd, buf, sizeof(buf) - vm->pending_len);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                n = 0;
        }
        if (n == 0) {
                /* End of input: keep the VM running, stop listening. */
                vm->stdin_source = sd_event_source_disable_unref(vm->stdin_source);
                return 0;
        }

        for (ssize_t i = 0; i < n; i++) {
                uint8_t c = buf[i];

                if (vm->stdin_is_tty) {
                        /* Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A, as in QEMU. */
                        if (vm->escape_pending) {
                                vm->escape_pending = false;
                                if (c == 'x' || c == 'X') {
                                        machine_request(vm->machine, MACHINE_REQUEST_QUIT);
                                        return 0;
                                }
                                if (c != 0x01)
                                        continue;
                        } else if (c == 0x01) {
                                vm->escape_pending = true;
                                continue;
                        }
                }
                vm->pending_input[vm->pending_len++] = c;
        }
        feed_serial(vm);
        return 0;
}

static int on_machine_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;

        machine_notify_drain(vm->machine);
        feed_serial(vm);

        if (machine_get_state(vm->machine) == MACHINE_SHUTDOWN)
                return sd_event_exit(vm->event, machine_exit_code(vm->machine));
        return 0;
}

static int on_hard_stop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;
        machine_request(vm->machine, MACHINE_REQUEST_QUIT);
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Vm *vm = userdata;
        int r;

        request_clean_stop(vm);
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
        int r;

        if (strcmp(serial, "none") == 0) {
                vm->serial_out_fd = -1;
                return 0;
        }
        if (strncmp(serial, "file:", 5) == 0) {
                vm->serial_out_fd = open(serial + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
                if (vm->serial_out_fd < 0) {
                        fprintf(stderr, "orrery-vm: cannot open serial output file '%s': %s\n", serial + 5, strerror(errno));
                        return -errno;
                }
                return 0;
        }

        /* stdio */
        vm->serial_out_fd = STDOUT_FILENO;
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &vm->saved_termios) == 0) {
                struct termios raw = vm->saved_termios;
                cfmakeraw(&raw);
                raw.c_oflag |= OPOST | ONLCR;
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
                        vm->stdin_is_tty = true;
        }
        fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
        r = sd_event_add_io(vm->event, &vm->stdin_source, STDIN_FILENO, EPOLLIN, on_stdin, vm);
        if (r == -EPERM) {
                /* stdin is a regular file (or /dev/null replaced by one): no interactive input. */
                vm->stdin_source = NULL;
                return 0;
        }
        return r;
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
        };
        MachineCallbacks callbacks = {
                .serial_output = serial_output,
                .opaque = vm,
        };
        char error[512] = "";
        int r;

        r = machine_new(&config, &callbacks, &vm->machine, error, sizeof(error));
        if (r < 0) {
                fprintf(stderr, "orrery-vm: %s\n", error);
                return EXIT_USAGE;
        }

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

        r = setup_serial(vm);
        if (r < 0)
                goto fail;

        /* The CPU thread inherits the blocked signal mask: signals go to the event loop. */
        r = machine_start(vm->machine);
        if (r < 0)
                goto fail;

        r = sd_event_loop(vm->event);
        restore_terminal(vm);
        if (r < 0)
                goto fail;
        return r;

fail:
        restore_terminal(vm);
        fprintf(stderr, "orrery-vm: %s\n", strerror(-r));
        return 1;
}

int main(int argc, char *argv[]) {
        Vm vm = { .serial_out_fd = -1 };
        char error[512] = "";
        int r;

        r = options_parse(&vm.options, argc, argv, error, sizeof(error));
        if (r < 0) {
                fprintf(stderr, "orrery-vm: %s\n", error);
                fprintf(stderr, "Try 'orrery-vm --help'.\n");
                return EXIT_USAGE;
        }
        if (r == 0)
                return 0; /* --help, --version */

        r = run(&vm);

        if (vm.machine)
                machine_free(vm.machine);
        vm.stop_timer = sd_event_source_unref(vm.stop_timer);
        vm.stdin_source = sd_event_source_disable_unref(vm.stdin_source);
        sd_event_unref(vm.event);
        if (vm.serial_out_fd > STDERR_FILENO)
                close(vm.serial_out_fd);
        options_free(&vm.options);
        return r;
}
