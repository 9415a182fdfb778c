/* SPDX-License-Identifier: MIT */
/*
 * orrery-guest-probe: the guest side of Orrery's framebuffer, input and CPU
 * tests. Runs inside the default guest (static riscv64 binary, installed as
 * /usr/bin/orrery-guest-probe); tests drive it from the serial console and
 * read the lines it prints, all of which start with "orrery-probe: ".
 *
 *   pattern [SEED]    draw the test pattern of pattern.h on /dev/fb0
 *   text              give the framebuffer back to the text console
 *   events [--syn] [COUNT]
 *                     print every input event of /dev/input/event*
 *   powerkey [--detach]
 *                     power off cleanly when KEY_POWER is pressed
 *   cpu-bench [ROUNDS]
 *                     deterministic CPU benchmark: checksum and time
 *   randread DEVICE [COUNT]
 *                     4 KiB direct reads at random aligned offsets: IOPS
 *   touch-ram MIB     write non-zero data to MIB MiB of RAM (save benchmarks)
 *
 * See guest/README.md for the exact output lines.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fb.h>
#include <linux/fs.h>
#include <linux/input.h>
#include <linux/kd.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "orrery-guest.h"
#include "pattern.h"

#define PREFIX "orrery-probe: "

/* We never listen to more input devices than this. */
#define INPUT_DEVICES_MAX 32U

#define IN_SET(x, a, b, c) ((x) == (a) || (x) == (b) || (x) == (c))

#define BITS_PER_LONG (sizeof(unsigned long) * CHAR_BIT)
#define BITS_TO_LONGS(n) (((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)

#define streq(a, b) (strcmp((a), (b)) == 0)

static const char *program_name = "orrery-guest-probe";

/* Logs "orrery-guest-probe: MESSAGE: strerror(-error)" on stderr and returns error. */
_printf_(2, 3) static int log_error_errno(int error, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", strerror(error < 0 ? -error : error));

        return error < 0 ? error : -error;
}

_printf_(1, 2) static int log_error(const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);

        return -EINVAL;
}

/* Prints one result line on stdout and pushes it out at once: tests read
 * these lines from the serial console while the program is still running. */
_printf_(1, 2) static void emit(const char *format, ...) {
        va_list ap;

        fputs(PREFIX, stdout);
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

static int parse_uint32(const char *s, uint32_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;

        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0)
                return -errno;
        if (*end != '\0')
                return -EINVAL;
        if (v > UINT32_MAX)
                return -ERANGE;

        *ret = (uint32_t) v;
        return 0;
}

/* --------------------------------------------------------------------------
 * Framebuffer
 */

typedef struct Framebuffer {
        int fd;
        uint8_t *map;
        size_t map_size;
        struct fb_var_screeninfo var;
        struct fb_fix_screeninfo fix;
} Framebuffer;

static void framebuffer_close(Framebuffer *fb) {
        if (fb->map && fb->map != MAP_FAILED)
                munmap(fb->map, fb->map_size);
        fb->map = NULL;
        fb->fd = safe_close(fb->fd);
}

static int framebuffer_open(const char *path, Framebuffer *ret) {
        Framebuffer fb = { .fd = -1 };
        uint64_t bytes_per_pixel, visible_end;
        int r;

        fb.fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fb.fd < 0)
                return -errno;

        if (ioctl(fb.fd, FBIOGET_VSCREENINFO, &fb.var) < 0 ||
            ioctl(fb.fd, FBIOGET_FSCREENINFO, &fb.fix) < 0) {
                r = -errno;
                goto fail;
        }

        /* Packed true-colour pixels of 2, 3 or 4 bytes is all we draw. */
        if (fb.fix.type != FB_TYPE_PACKED_PIXELS || fb.fix.visual != FB_VISUAL_TRUECOLOR ||
            !IN_SET(fb.var.bits_per_pixel, 16, 24, 32) || fb.var.xres == 0 || fb.var.yres == 0) {
                r = -EOPNOTSUPP;
                goto fail;
        }

        bytes_per_pixel = fb.var.bits_per_pixel / 8;
        visible_end = ((uint64_t) fb.var.yoffset + fb.var.yres - 1) * fb.fix.line_length +
                      ((uint64_t) fb.var.xoffset + fb.var.xres) * bytes_per_pixel;
        if ((uint64_t) fb.var.xres * bytes_per_pixel > fb.fix.line_length || visible_end > fb.fix.smem_len) {
                r = -EBADMSG;
                goto fail;
        }

        fb.map_size = fb.fix.smem_len;
        fb.map = mmap(NULL, fb.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fb.fd, 0);
        if (fb.map == MAP_FAILED) {
                r = -errno;
                goto fail;
        }

        *ret = fb;
        return 0;

fail:
        framebuffer_close(&fb);
        return r;
}

/* Converts an XRGB8888 pixel to the framebuffer's channel layout. */
static uint32_t framebuffer_pack(const Framebuffer *fb, uint32_t xrgb) {
        const struct fb_bitfield *channels[3] = { &fb->var.red, &fb->var.green, &fb->var.blue };
        uint32_t v = 0;

        for (size_t i = 0; i < ELEMENTSOF(channels); i++) {
                uint32_t c = (xrgb >> (16 - 8 * i)) & 0xffU;
                uint32_t length = MIN(channels[i]->length, 8U);

                v |= (c >> (8 - length)) << channels[i]->offset;
        }

        return v;
}

static bool framebuffer_is_xrgb8888(const Framebuffer *fb) {
        return fb->var.bits_per_pixel == 32 &&
                fb->var.red.offset == 16 && fb->var.red.length == 8 &&
                fb->var.green.offset == 8 && fb->var.green.length == 8 &&
                fb->var.blue.offset == 0 && fb->var.blue.length == 8;
}

static void framebuffer_draw_pattern(Framebuffer *fb, uint32_t seed) {
        uint32_t width = fb->var.xres, height = fb->var.yres;
        size_t bytes_per_pixel = fb->var.bits_per_pixel / 8;
        bool xrgb8888 = framebuffer_is_xrgb8888(fb);
        uint8_t *origin;

        origin = fb->map + (size_t) fb->var.yoffset * fb->fix.line_length +
                 (size_t) fb->var.xoffset * bytes_per_pixel;

        for (uint32_t y = 0; y < height; y++) {
                uint8_t *p = origin + (size_t) y * fb->fix.line_length;

                for (uint32_t x = 0; x < width; x++, p += bytes_per_pixel) {
                        uint32_t v = orrery_pattern_pixel(x, y, width, height, seed);

                        if (xrgb8888) {
                                memcpy(p, &v, sizeof(v));
                                continue;
                        }

                        v = framebuffer_pack(fb, v);
                        for (size_t i = 0; i < bytes_per_pixel; i++)
                                p[i] = (uint8_t) (v >> (8 * i));
                }
        }
}

/* Sets the foreground virtual terminal to KD_GRAPHICS or KD_TEXT. In
 * graphics mode fbcon stops drawing (console output, cursor blink), so the
 * pattern stays as drawn. */
static int console_set_mode(int mode) {
        _cleanup_close_ int fd = -1;

        fd = open("/dev/tty0", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        if (ioctl(fd, KDSETMODE, mode) < 0)
                return -errno;

        return 0;
}

static int verb_pattern(int argc, char *argv[]) {
        _cleanup_(framebuffer_close) Framebuffer fb = { .fd = -1 };
        uint32_t seed = 0;
        int r;

        if (argc > 2)
                return log_error("usage: %s pattern [SEED]", program_name);
        if (argc == 2) {
                r = parse_uint32(argv[1], &seed);
                if (r < 0)
                        return log_error_errno(r, "Invalid seed '%s'", argv[1]);
        }

        r = framebuffer_open("/dev/fb0", &fb);
        if (r == -EOPNOTSUPP)
                return log_error("/dev/fb0: unsupported pixel format (want packed true colour, 16/24/32 bpp)");
        if (r < 0)
                return log_error_errno(r, "Failed to open /dev/fb0");

        /* Without a virtual terminal there is no fbcon to silence: not an error. */
        r = console_set_mode(KD_GRAPHICS);
        if (r < 0 && r != -ENOENT && r != -ENXIO && r != -ENODEV)
                return log_error_errno(r, "Failed to switch the console to graphics mode");

        framebuffer_draw_pattern(&fb, seed);

        emit("pattern drawn %" PRIu32 "x%" PRIu32, fb.var.xres, fb.var.yres);
        return 0;
}

static int verb_text(int argc, char *argv[]) {
        int r;

        if (argc != 1)
                return log_error("usage: %s text", program_name);

        r = console_set_mode(KD_TEXT);
        if (r < 0)
                return log_error_errno(r, "Failed to switch the console to text mode");

        emit("console text mode");
        return 0;
}

/* --------------------------------------------------------------------------
 * Input
 */

typedef struct InputDevice {
        int fd;
        char *name; /* "event0" */
} InputDevice;

typedef struct InputDevices {
        InputDevice devices[INPUT_DEVICES_MAX];
        size_t n_devices;
} InputDevices;

static void input_devices_close(InputDevices *d) {
        for (size_t i = 0; i < d->n_devices; i++) {
                d->devices[i].fd = safe_close(d->devices[i].fd);
                free(d->devices[i].name);
        }
        d->n_devices = 0;
}

static int filter_event_node(const struct dirent *de) {
        return strncmp(de->d_name, "event", 5) == 0;
}

static bool test_bit(const unsigned long *bits, unsigned bit) {
        return bits[bit / BITS_PER_LONG] & (1UL << (bit % BITS_PER_LONG));
}

/* Whether the device can report the key: asks the kernel for its EV_KEY bitmap. */
static int input_device_has_key(int fd, unsigned key) {
        unsigned long bits[BITS_TO_LONGS(KEY_CNT)] = {};

        if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(bits)), bits) < 0)
                return -errno;

        return test_bit(bits, key);
}

/* Opens /dev/input/event* in version order. With only_key > 0, keeps only
 * the devices that can report that key. */
static int input_devices_open(unsigned only_key, InputDevices *ret) {
        struct dirent **entries = NULL;
        int n, r = 0;

        n = scandir("/dev/input", &entries, filter_event_node, versionsort);
        if (n < 0)
                return errno == ENOENT ? 0 : -errno;

        for (int i = 0; i < n; i++) {
                _cleanup_close_ int fd = -1;
                _cleanup_free_ char *path = NULL;

                if (r < 0 || ret->n_devices >= INPUT_DEVICES_MAX)
                        goto next;

                if (asprintf(&path, "/dev/input/%s", entries[i]->d_name) < 0) {
                        path = NULL;
                        r = -ENOMEM;
                        goto next;
                }

                fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                if (fd < 0) {
                        /* A device that went away meanwhile is not an error. */
                        if (errno != ENOENT && errno != ENODEV)
                                r = -errno;
                        goto next;
                }

                if (only_key > 0) {
                        int k = input_device_has_key(fd, only_key);
                        if (k <= 0)
                                goto next;
                }

                ret->devices[ret->n_devices].name = strdup(entries[i]->d_name);
                if (!ret->devices[ret->n_devices].name) {
                        r = -ENOMEM;
                        goto next;
                }
                ret->devices[ret->n_devices++].fd = TAKE_FD(fd);
        next:
                free(entries[i]);
        }
        free(entries);

        if (r < 0)
                input_devices_close(ret);
        return r;
}

/* Reads what one device has pending and calls handler for every event.
 * Returns -ENODEV when the device went away, or what the handler returns
 * when that is non-zero (to stop). */
static int input_device_dispatch(
                const InputDevice *device,
                int (*handler)(const InputDevice *device, const struct input_event *ev, void *userdata),
                void *userdata) {

        struct input_event events[64];
        ssize_t n;

        for (;;) {
                n = read(device->fd, events, sizeof(events));
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                if (n == 0)
                        return -ENODEV;

                for (size_t i = 0; i < (size_t) n / sizeof(events[0]); i++) {
                        int r = handler(device, &events[i], userdata);
                        if (r != 0)
                                return r;
                }
        }
}

/* Polls all devices and dispatches their events until a handler returns
 * non-zero (returned: > 0 is a normal stop) or no device is left. */
static int input_devices_loop(
                InputDevices *d,
                int (*handler)(const InputDevice *device, const struct input_event *ev, void *userdata),
                void *userdata) {

        struct pollfd fds[INPUT_DEVICES_MAX];
        int r;

        for (;;) {
                size_t n_open = 0;

                for (size_t i = 0; i < d->n_devices; i++) {
                        fds[i] = (struct pollfd) { .fd = d->devices[i].fd, .events = POLLIN };
                        if (d->devices[i].fd >= 0)
                                n_open++;
                }
                if (n_open == 0)
                        return -ENODEV;

                if (poll(fds, d->n_devices, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }

                for (size_t i = 0; i < d->n_devices; i++) {
                        if (fds[i].fd < 0 || fds[i].revents == 0)
                                continue;

                        r = input_device_dispatch(&d->devices[i], handler, userdata);
                        if (r == -ENODEV) {
                                /* Unplugged: stop listening to it (poll ignores fd -1). */
                                d->devices[i].fd = safe_close(d->devices[i].fd);
                                continue;
                        }
                        if (r != 0)
                                return r;
                }
        }
}

typedef struct EventsContext {
        bool syn;
        uint64_t count;   /* stop after that many printed events, 0: never */
        uint64_t printed;
} EventsContext;

static int print_event(const InputDevice *device, const struct input_event *ev, void *userdata) {
        EventsContext *c = userdata;

        if (ev->type == EV_SYN && !c->syn)
                return 0;

        emit("event %s type=%u code=%u value=%" PRIi32, device->name, ev->type, ev->code, ev->value);

        c->printed++;
        return c->count > 0 && c->printed >= c->count;
}

static int verb_events(int argc, char *argv[]) {
        _cleanup_(input_devices_close) InputDevices devices = {};
        EventsContext c = {};
        int r;

        for (int i = 1; i < argc; i++) {
                uint32_t count;

                if (streq(argv[i], "--syn")) {
                        c.syn = true;
                        continue;
                }

                r = parse_uint32(argv[i], &count);
                if (r < 0 || c.count > 0)
                        return log_error("usage: %s events [--syn] [COUNT]", program_name);
                c.count = count;
        }

        r = input_devices_open(0, &devices);
        if (r < 0)
                return log_error_errno(r, "Failed to open the input devices");

        for (size_t i = 0; i < devices.n_devices; i++) {
                char name[256] = "";

                /* The kernel truncates the name to the buffer; keep it on one line. */
                if (ioctl(devices.devices[i].fd, EVIOCGNAME(sizeof(name) - 1), name) < 0)
                        name[0] = '\0';
                for (char *p = name; *p; p++)
                        if (*p < ' ' || *p == 0x7f)
                                *p = '?';

                emit("device %s name=%s", devices.devices[i].name, name);
        }
        emit("listening %zu devices", devices.n_devices);

        if (devices.n_devices == 0)
                return 0;

        r = input_devices_loop(&devices, print_event, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to read input events");

        return 0;
}

static int handle_power_key(const InputDevice *device, const struct input_event *ev, void *userdata) {
        return ev->type == EV_KEY && ev->code == KEY_POWER && ev->value == 1;
}

static int verb_powerkey(int argc, char *argv[]) {
        _cleanup_(input_devices_close) InputDevices devices = {};
        int r;

        bool detach = argc == 2 && streq(argv[1], "--detach");

        if (argc != 1 && !detach)
                return log_error("usage: %s powerkey [--detach]", program_name);

        r = input_devices_open(KEY_POWER, &devices);
        if (r < 0)
                return log_error_errno(r, "Failed to open the input devices");
        if (devices.n_devices == 0) {
                fprintf(stderr, "%s: no input device has a power key, not waiting for one\n", program_name);
                return 0;
        }

        /* With --detach the caller goes on only once the devices are open,
         * so a press right after boot (the ready marker) is never missed. */
        if (detach) {
                pid_t pid = fork();
                if (pid < 0)
                        return log_error_errno(-errno, "Failed to fork");
                if (pid > 0)
                        _exit(EXIT_SUCCESS);
                (void) setsid();
        }

        r = input_devices_loop(&devices, handle_power_key, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to read input events");

        emit("power key pressed, powering off");
        input_devices_close(&devices);

        /* poweroff(8) asks init to shut down cleanly, whichever init it is.
         * If it cannot be run, ask busybox init directly. */
        execl("/sbin/poweroff", "poweroff", (char *) NULL);
        if (kill(1, SIGUSR2) < 0)
                return log_error_errno(-errno, "Failed to request power-off");

        return 0;
}

/* --------------------------------------------------------------------------
 * CPU benchmark
 *
 * Integer (CRC32, 64-bit multiply and divide), memory (a 256 KiB stream and
 * a 1 MiB random pointer chase), double-precision floating point (a 48x48
 * matrix product, square roots, divisions) and branches (a prime sieve).
 * Everything derives from fixed seeds, so the checksum is the same on every
 * correct RV64GC implementation; the time is what is compared.
 */

#define BENCH_ROUNDS_DEFAULT 32U
#define BENCH_STREAM_SIZE (256U * 1024U)
#define BENCH_CHASE_COUNT (256U * 1024U)
#define BENCH_MATRIX_N 48U
#define BENCH_SIEVE_N 200000U
#define BENCH_DIVIDE_STEPS 100000U

typedef struct Bench {
        uint32_t crc_table[256];
        uint8_t stream[BENCH_STREAM_SIZE];
        uint32_t chase[BENCH_CHASE_COUNT];
        double a[BENCH_MATRIX_N][BENCH_MATRIX_N];
        double b[BENCH_MATRIX_N][BENCH_MATRIX_N];
        double c[BENCH_MATRIX_N][BENCH_MATRIX_N];
        uint8_t composite[BENCH_SIEVE_N + 1];
        uint64_t rng;
} Bench;

static uint64_t bench_random(Bench *b) {
        /* xorshift64* */
        b->rng ^= b->rng >> 12;
        b->rng ^= b->rng << 25;
        b->rng ^= b->rng >> 27;
        return b->rng * UINT64_C(2685821657736338717);
}

static uint64_t bench_mix(uint64_t h, uint64_t v) {
        /* FNV-1a over the 8 bytes of v. */
        for (unsigned i = 0; i < 8; i++) {
                h ^= (v >> (8 * i)) & 0xffU;
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static uint64_t double_bits(double d) {
        uint64_t v;

        memcpy(&v, &d, sizeof(v));
        return v;
}

static void bench_init(Bench *b) {
        b->rng = UINT64_C(0x4f72726572792121); /* "Orrery!!" */

        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (unsigned k = 0; k < 8; k++)
                        c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
                b->crc_table[i] = c;
        }

        for (size_t i = 0; i < BENCH_STREAM_SIZE; i += 8) {
                uint64_t v = bench_random(b);
                memcpy(b->stream + i, &v, sizeof(v));
        }

        /* One random cycle through all slots (Sattolo's algorithm). */
        for (uint32_t i = 0; i < BENCH_CHASE_COUNT; i++)
                b->chase[i] = i;
        for (uint32_t i = BENCH_CHASE_COUNT - 1; i > 0; i--) {
                uint32_t j = (uint32_t) (bench_random(b) % i), t;

                t = b->chase[i];
                b->chase[i] = b->chase[j];
                b->chase[j] = t;
        }

        for (unsigned i = 0; i < BENCH_MATRIX_N; i++)
                for (unsigned j = 0; j < BENCH_MATRIX_N; j++) {
                        b->a[i][j] = (double) (bench_random(b) % 2001) / 1000.0 - 1.0;
                        b->b[i][j] = (double) (bench_random(b) % 2001) / 1000.0 - 1.0;
                }
}

static uint32_t bench_crc32(const Bench *b) {
        uint32_t crc = 0xffffffffU;

        for (size_t i = 0; i < BENCH_STREAM_SIZE; i++)
                crc = b->crc_table[(crc ^ b->stream[i]) & 0xffU] ^ (crc >> 8);

        return crc ^ 0xffffffffU;
}

static uint64_t bench_chase(const Bench *b, uint32_t start) {
        uint64_t sum = 0;
        uint32_t p = start % BENCH_CHASE_COUNT;

        for (uint32_t i = 0; i < BENCH_CHASE_COUNT; i++) {
                p = b->chase[p];
                sum += p;
        }

        return sum;
}

static double bench_matrix(Bench *b, unsigned round) {
        double acc = 0.0;

        for (unsigned i = 0; i < BENCH_MATRIX_N; i++)
                for (unsigned j = 0; j < BENCH_MATRIX_N; j++) {
                        double s = 0.0;
                        for (unsigned k = 0; k < BENCH_MATRIX_N; k++)
                                s += b->a[i][k] * b->b[k][j];
                        b->c[i][j] = s;
                }

        for (unsigned i = 0; i < BENCH_MATRIX_N; i++)
                acc += sqrt(fabs(b->c[i][i]) + 1.0) / (double) (i + 1 + round);

        /* Feed the result back, so that rounds differ. */
        b->a[round % BENCH_MATRIX_N][(round * 7) % BENCH_MATRIX_N] = acc / (double) BENCH_MATRIX_N;

        return acc;
}

static uint32_t bench_sieve(Bench *b) {
        uint32_t primes = 0;

        memset(b->composite, 0, sizeof(b->composite));
        for (uint32_t i = 2; i <= BENCH_SIEVE_N; i++) {
                if (b->composite[i])
                        continue;
                primes++;
                for (uint64_t j = (uint64_t) i * i; j <= BENCH_SIEVE_N; j += i)
                        b->composite[j] = 1;
        }

        return primes;
}

static uint64_t bench_divide(uint64_t x) {
        uint64_t sum = 0;

        for (uint32_t i = 0; i < BENCH_DIVIDE_STEPS; i++) {
                x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                sum += x % UINT64_C(1000003) + (x >> 32) / (i + 1);
        }

        return sum;
}

static int verb_cpu_bench(int argc, char *argv[]) {
        _cleanup_free_ Bench *b = NULL;
        struct timespec start, end;
        uint32_t rounds = BENCH_ROUNDS_DEFAULT;
        uint64_t checksum = UINT64_C(0xcbf29ce484222325);
        int64_t ns;
        int r;

        if (argc > 2)
                return log_error("usage: %s cpu-bench [ROUNDS]", program_name);
        if (argc == 2) {
                r = parse_uint32(argv[1], &rounds);
                if (r < 0 || rounds == 0)
                        return log_error("Invalid number of rounds '%s'", argv[1]);
        }

        b = calloc(1, sizeof(Bench));
        if (!b)
                return log_error_errno(-ENOMEM, "Failed to allocate the benchmark state");

        if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
                return log_error_errno(-errno, "Failed to read the clock");

        bench_init(b);
        for (uint32_t i = 0; i < rounds; i++) {
                /* Change the stream a little each round. */
                b->stream[(i * 7919U) % BENCH_STREAM_SIZE] ^= (uint8_t) (i + 1);

                checksum = bench_mix(checksum, bench_crc32(b));
                checksum = bench_mix(checksum, bench_chase(b, i * 31U));
                checksum = bench_mix(checksum, double_bits(bench_matrix(b, i)));
                checksum = bench_mix(checksum, bench_sieve(b));
                checksum = bench_mix(checksum, bench_divide(checksum));
        }

        if (clock_gettime(CLOCK_MONOTONIC, &end) < 0)
                return log_error_errno(-errno, "Failed to read the clock");

        ns = (int64_t) (end.tv_sec - start.tv_sec) * 1000000000 + (end.tv_nsec - start.tv_nsec);

        emit("cpu-bench result=%016" PRIx64 " ms=%" PRIi64, checksum, ns / 1000000);
        return 0;
}

#define RANDREAD_BLOCK 4096U
#define RANDREAD_COUNT_DEFAULT 2000U

/*
 * One read at a time, O_DIRECT so that every read reaches the device (no
 * page cache, no readahead): the IOPS of a queue depth of 1, which is what
 * the device and its transport cost per request.
 */
static int verb_randread(int argc, char *argv[]) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ void *buf = NULL;
        struct timespec start, end;
        uint32_t count = RANDREAD_COUNT_DEFAULT;
        uint64_t size = 0, blocks, x = UINT64_C(0x9e3779b97f4a7c15);
        int64_t ns;
        int r;

        if (argc < 2 || argc > 3)
                return log_error("usage: %s randread DEVICE [COUNT]", program_name);
        if (argc == 3) {
                r = parse_uint32(argv[2], &count);
                if (r < 0 || count == 0)
                        return log_error("Invalid count '%s'", argv[2]);
        }
        fd = open(argv[1], O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open %s", argv[1]);
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                return log_error_errno(-errno, "Failed to read the size of %s", argv[1]);
        blocks = size / RANDREAD_BLOCK;
        if (blocks == 0)
                return log_error("%s is smaller than %u bytes", argv[1], RANDREAD_BLOCK);
        if (posix_memalign(&buf, RANDREAD_BLOCK, RANDREAD_BLOCK) != 0)
                return log_error_errno(-ENOMEM, "Failed to allocate the buffer");

        if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
                return log_error_errno(-errno, "Failed to read the clock");
        for (uint32_t i = 0; i < count; i++) {
                /* A fixed-seed LCG: the same offsets on every run and every emulator. */
                x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                if (pread(fd, buf, RANDREAD_BLOCK, (off_t) ((x >> 16) % blocks * RANDREAD_BLOCK)) != RANDREAD_BLOCK)
                        return log_error_errno(-EIO, "Read %" PRIu32 " of %s failed", i, argv[1]);
        }
        if (clock_gettime(CLOCK_MONOTONIC, &end) < 0)
                return log_error_errno(-errno, "Failed to read the clock");

        ns = (int64_t) (end.tv_sec - start.tv_sec) * 1000000000 + (end.tv_nsec - start.tv_nsec);
        emit("randread ops=%" PRIu32 " ms=%" PRIi64 " iops=%" PRIi64, count, ns / 1000000,
             ns > 0 ? (int64_t) count * 1000000000 / ns : 0);
        return 0;
}

/* Below MemAvailable by this much, so that the fill never wakes the OOM killer. */
#define TOUCH_RAM_MARGIN_MIB 24U

static int mem_available_mib(uint64_t *ret) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[128];
        unsigned long long kib;

        f = fopen("/proc/meminfo", "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
                        *ret = kib / 1024;
                        return 0;
                }
        return -ENOENT;
}

/*
 * Writes non-zero data to every byte of MIB MiB of fresh anonymous memory
 * (each page different), so that that much of the guest's RAM holds data a
 * save or a migration must carry, then exits: Linux does not clear pages
 * it frees, so they keep the data until they are used again. Capped below
 * MemAvailable (the line says how much was touched).
 */
static int verb_touch_ram(int argc, char *argv[]) {
        struct timespec start, end;
        uint64_t available = 0, words;
        uint32_t mib;
        uint64_t *p;
        int64_t ns;
        int r;

        if (argc != 2)
                return log_error("usage: %s touch-ram MIB", program_name);
        r = parse_uint32(argv[1], &mib);
        if (r < 0 || mib == 0)
                return log_error("Invalid size '%s'", argv[1]);

        r = mem_available_mib(&available);
        if (r < 0)
                return log_error_errno(r, "Failed to read MemAvailable from /proc/meminfo");
        if (available <= TOUCH_RAM_MARGIN_MIB)
                return log_error("Only %" PRIu64 " MiB available", available);
        if (mib > available - TOUCH_RAM_MARGIN_MIB)
                mib = (uint32_t) (available - TOUCH_RAM_MARGIN_MIB);

        words = (uint64_t) mib << 17; /* 8-byte words in MIB MiB */
        p = mmap(NULL, words * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return log_error_errno(-errno, "Failed to map %" PRIu32 " MiB", mib);

        if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
                return log_error_errno(-errno, "Failed to read the clock");
        for (uint64_t i = 0; i < words; i++)
                p[i] = (i * UINT64_C(0x9e3779b97f4a7c15)) | 1;
        if (clock_gettime(CLOCK_MONOTONIC, &end) < 0)
                return log_error_errno(-errno, "Failed to read the clock");

        ns = (int64_t) (end.tv_sec - start.tv_sec) * 1000000000 + (end.tv_nsec - start.tv_nsec);
        emit("touch-ram mib=%" PRIu32 " ms=%" PRIi64, mib, ns / 1000000);
        return 0;
}

#define EXEC_PAGE 4096U
#define EXEC_PAGES_DEFAULT 8U

/*
 * Code loaded by DMA: reads page after page of DEVICE straight into one
 * executable page (O_DIRECT: the disk's controller writes it, not the CPU),
 * makes the instruction cache see it as a program loader does (FENCE.I
 * through the kernel), and calls it. Each page is a function returning a
 * value in a0; the test that made the disk knows them. The page first holds
 * code the CPU wrote and ran, so that every read replaces code that has
 * run: an engine that kept a translation of the old bytes prints the old
 * value.
 */
static int verb_exec_dma(int argc, char *argv[]) {
        _cleanup_close_ int fd = -EBADF;
        uint32_t pages = EXEC_PAGES_DEFAULT;
        long (*fn)(void);
        uint32_t *code;
        int r;

        if (argc < 2 || argc > 3)
                return log_error("usage: %s exec-dma DEVICE [PAGES]", program_name);
        if (argc == 3) {
                r = parse_uint32(argv[2], &pages);
                if (r < 0 || pages == 0)
                        return log_error("Invalid number of pages '%s'", argv[2]);
        }
        fd = open(argv[1], O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open %s", argv[1]);
        code = mmap(NULL, EXEC_PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (code == MAP_FAILED)
                return log_error_errno(-errno, "Failed to map an executable page");

        /* Written by the CPU: addi a0, zero, -1; ret */
        code[0] = 0xfff00513;
        code[1] = 0x00008067;
        __builtin___clear_cache((char *) code, (char *) code + EXEC_PAGE);
        memcpy(&fn, &code, sizeof(fn));
        emit("exec-dma cpu-written value=%ld", fn());

        for (uint32_t i = 0; i < pages; i++) {
                if (pread(fd, code, EXEC_PAGE, (off_t) i * EXEC_PAGE) != EXEC_PAGE) {
                        r = log_error_errno(-EIO, "Read of page %" PRIu32 " of %s failed", i, argv[1]);
                        munmap(code, EXEC_PAGE);
                        return r;
                }
                __builtin___clear_cache((char *) code, (char *) code + EXEC_PAGE);
                emit("exec-dma page=%" PRIu32 " value=%ld", i, fn());
        }
        munmap(code, EXEC_PAGE);
        emit("exec-dma done pages=%" PRIu32, pages);
        return 0;
}

/* -------------------------------------------------------------------------- */

static void help(void) {
        printf("%s COMMAND [ARGS...]\n\n"
               "Guest-side helper of Orrery's tests.\n\n"
               "  pattern [SEED]           Draw the test pattern on /dev/fb0\n"
               "  text                     Give the framebuffer back to the text console\n"
               "  events [--syn] [COUNT]   Print input events (EV_SYN only with --syn),\n"
               "                           stop after COUNT of them\n"
               "  powerkey [--detach]      Power off when KEY_POWER is pressed\n"
               "  cpu-bench [ROUNDS]       Run the CPU benchmark (default %u rounds)\n"
               "  randread DEVICE [COUNT]  4 KiB direct random reads (default %u), print IOPS\n"
               "  touch-ram MIB            Write non-zero data to MIB MiB of RAM, then exit\n"
               "  exec-dma DEVICE [PAGES]  Read each page of DEVICE into one executable page\n"
               "                           by O_DIRECT and call it (default %u pages)\n",
               program_name, BENCH_ROUNDS_DEFAULT, RANDREAD_COUNT_DEFAULT, EXEC_PAGES_DEFAULT);
}

int probe_main(int argc, char *argv[]) {
        static const struct {
                const char *name;
                int (*run)(int argc, char *argv[]);
        } verbs[] = {
                { "pattern",   verb_pattern   },
                { "text",      verb_text      },
                { "events",    verb_events    },
                { "powerkey",  verb_powerkey  },
                { "cpu-bench", verb_cpu_bench },
                { "randread",  verb_randread  },
                { "touch-ram", verb_touch_ram },
                { "exec-dma",  verb_exec_dma  },
        };

        if (argc < 2) {
                help();
                return EXIT_FAILURE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                help();
                return EXIT_SUCCESS;
        }

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        return verbs[i].run(argc - 1, argv + 1) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        log_error("unknown command '%s', see --help", argv[1]);
        return EXIT_FAILURE;
}
