/* SPDX-License-Identifier: MIT */
/*
 * orrery-vnc's parts that need no VM: the keysym -> evdev table built from
 * xkbcommon, --listen parsing and the loopback rule, the password file's
 * checks, the placeholder screen, the password-guessing guard.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/input-event-codes.h>
#include <xkbcommon/xkbcommon-keysyms.h>

#include "guard.h"
#include "keymap.h"
#include "listen.h"
#include "macro.h"
#include "password.h"
#include "placeholder.h"
#include "tap.h"

static void test_keymap_us(void) {
        Keymap *k = NULL;
        static const struct {
                uint32_t keysym;
                int code;
                const char *name;
        } cases[] = {
                { XKB_KEY_a, KEY_A, "a" },
                { XKB_KEY_A, KEY_A, "A (the client holds Shift itself)" },
                { XKB_KEY_z, KEY_Z, "z" },
                { XKB_KEY_1, KEY_1, "1 (the main row, not the keypad)" },
                { XKB_KEY_exclam, KEY_1, "exclam" },
                { XKB_KEY_at, KEY_2, "at" },
                { XKB_KEY_parenleft, KEY_9, "parenleft (not KEY_KPLEFTPAREN)" },
                { XKB_KEY_parenright, KEY_0, "parenright (not KEY_KPRIGHTPAREN)" },
                { XKB_KEY_dollar, KEY_4, "dollar (not KEY_DOLLAR)" },
                { XKB_KEY_asterisk, KEY_8, "asterisk (Shift+8 before KEY_KPASTERISK's level 1)" },
                { XKB_KEY_plus, KEY_EQUAL, "plus" },
                { XKB_KEY_less, KEY_102ND, "less (level 1 of the 102nd key beats level 2 of comma)" },
                { XKB_KEY_Return, KEY_ENTER, "Return" },
                { XKB_KEY_KP_Enter, KEY_KPENTER, "KP_Enter" },
                { XKB_KEY_KP_1, KEY_KP1, "KP_1" },
                { XKB_KEY_Left, KEY_LEFT, "Left" },
                { XKB_KEY_Up, KEY_UP, "Up" },
                { XKB_KEY_Shift_L, KEY_LEFTSHIFT, "Shift_L" },
                { XKB_KEY_Shift_R, KEY_RIGHTSHIFT, "Shift_R" },
                { XKB_KEY_Control_L, KEY_LEFTCTRL, "Control_L" },
                { XKB_KEY_Alt_L, KEY_LEFTALT, "Alt_L" },
                { XKB_KEY_Super_L, KEY_LEFTMETA, "Super_L" },
                { XKB_KEY_Escape, KEY_ESC, "Escape" },
                { XKB_KEY_BackSpace, KEY_BACKSPACE, "BackSpace" },
                { XKB_KEY_Tab, KEY_TAB, "Tab" },
                { XKB_KEY_F1, KEY_F1, "F1" },
                { XKB_KEY_F12, KEY_F12, "F12" },
                { XKB_KEY_Delete, KEY_DELETE, "Delete" },
                { XKB_KEY_space, KEY_SPACE, "space" },
                { XKB_KEY_Caps_Lock, KEY_CAPSLOCK, "Caps_Lock" },
        };

        CHECK(keymap_new("us", NULL, &k) == 0 && k, "a keymap for 'us' is built");
        if (!k)
                return;
        CHECK(keymap_size(k) > 100, "it knows more than 100 keysyms (%zu)", keymap_size(k));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK_EQ_U64(keymap_lookup(k, cases[i].keysym), cases[i].code, "us: %s -> %d", cases[i].name,
                             cases[i].code);
        {
                uint32_t needs = 99;
                CHECK(keymap_lookup_modifiers(k, XKB_KEY_exclam, &needs) == KEY_1 && needs == KEYMAP_NEED_SHIFT,
                      "us: exclam needs Shift on KEY_1");
                CHECK(keymap_lookup_modifiers(k, XKB_KEY_1, &needs) == KEY_1 && needs == 0, "us: 1 needs nothing");
                CHECK(keymap_lookup_modifiers(k, XKB_KEY_A, &needs) == KEY_A && needs == 0,
                      "us: A needs nothing (the client's Shift or Caps Lock decides the case)");
                CHECK(keymap_lookup_modifiers(k, XKB_KEY_a, &needs) == KEY_A && needs == 0, "us: a needs nothing");
                CHECK(keymap_lookup_modifiers(k, XKB_KEY_Left, &needs) == KEY_LEFT && needs == 0,
                      "us: Left needs nothing");
                CHECK(keymap_lookup_modifiers(k, 0x0101f600, &needs) == -ENOENT, "us: no key, no modifiers");
        }
        CHECK(keymap_lookup(k, XKB_KEY_adiaeresis) == -ENOENT, "us: adiaeresis has no key (-ENOENT)");
        CHECK(keymap_lookup(k, 0x0101f600) == -ENOENT, "us: a Unicode emoji keysym has no key");
        CHECK(keymap_lookup(k, 0) == -ENOENT && keymap_lookup(k, 0xffffffffu) == -ENOENT,
              "us: NoSymbol and 0xffffffff have no key");
        keymap_free(k);
}

static void test_keymap_layouts(void) {
        Keymap *k = NULL;

        CHECK(keymap_new("de", NULL, &k) == 0 && k, "a keymap for 'de' is built");
        if (k) {
                CHECK_EQ_U64(keymap_lookup(k, XKB_KEY_z), KEY_Y, "de: z is on the key where us has Y");
                CHECK_EQ_U64(keymap_lookup(k, XKB_KEY_adiaeresis), KEY_APOSTROPHE, "de: adiaeresis has its key");
                {
                        uint32_t needs = 0;
                        CHECK(keymap_lookup_modifiers(k, XKB_KEY_at, &needs) == KEY_Q && needs == KEYMAP_NEED_LEVEL3,
                              "de: at is AltGr+Q");
                }
                k = keymap_free(k);
        }
        CHECK(keymap_new("fr", "azerty", &k) == 0 && k, "a keymap for 'fr(azerty)' is built");
        if (k) {
                CHECK_EQ_U64(keymap_lookup(k, XKB_KEY_a), KEY_Q, "fr: a is on the key where us has Q");
                k = keymap_free(k);
        }
        CHECK(keymap_new("no-such-layout", NULL, &k) == -ENOENT && !k, "an unknown layout is -ENOENT");
        CHECK(keymap_new("", NULL, &k) == -EINVAL, "an empty layout is -EINVAL");
}

static void test_listen_spec(void) {
        static const struct {
                const char *s;
                const char *host;
                int port;
        } good[] = {
                { "127.0.0.1:5900", "127.0.0.1", 5900 }, { "[::1]:5901", "::1", 5901 },
                { "localhost:0", "localhost", 0 },       { ":5900", NULL, 5900 },
                { "0.0.0.0:65535", "0.0.0.0", 65535 },
        };
        static const char *const bad[] = {
                "", "5900", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:59x",
                "::1:5900", "[::1]5900", "[]:5900", "[::1:5900", "host: 5900", "127.0.0.1:99999999999999999999",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                ListenSpec spec = {};
                int r = listen_spec_parse(good[i].s, &spec);

                CHECK(r == 0 && spec.port == good[i].port &&
                              (good[i].host ? spec.host && strcmp(spec.host, good[i].host) == 0 : !spec.host),
                      "--listen '%s' parses", good[i].s);
                listen_spec_done(&spec);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ListenSpec spec = {};

                CHECK(listen_spec_parse(bad[i], &spec) == -EINVAL && !spec.host, "--listen '%s' is refused", bad[i]);
        }
}

static void test_listen_open(void) {
        int fds[LISTEN_MAX_SOCKETS];
        size_t n = 0;
        bool loopback = false;
        uint16_t port = 0;

        CHECK(listen_open("127.0.0.1", 0, true, fds, &n, &loopback, &port) == 0 && n == 1 && loopback && port > 0,
              "127.0.0.1:0 listens, on a port the kernel picked, and is loopback");
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        n = 0;
        CHECK(listen_open("0.0.0.0", 0, true, fds, &n, &loopback, &port) == -EPERM && n == 0,
              "0.0.0.0 is refused (-EPERM) when only loopback is allowed, and nothing listens");
        CHECK(listen_open(NULL, 0, true, fds, &n, &loopback, &port) == -EPERM && n == 0,
              "the wildcard is refused when only loopback is allowed");
        CHECK(listen_open("0.0.0.0", 0, false, fds, &n, &loopback, &port) == 0 && n == 1 && !loopback,
              "0.0.0.0 listens when allowed, and is reported as not loopback");
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        CHECK(listen_open("192.0.2.1", 0, false, fds, &n, &loopback, &port) < 0,
              "an address this host does not have is an error");
}

/* A loopback connection to a listener on host; checks listen_peer() on the accepted end. */
static void check_peer(int family, const char *host, const char *want_source) {
        int fds[LISTEN_MAX_SOCKETS], c = -1, a = -1;
        size_t n = 0;
        bool loopback;
        uint16_t port;
        char name[LISTEN_PEER_MAX] = "", source[LISTEN_PEER_MAX] = "", want_name[LISTEN_PEER_MAX] = "";
        struct sockaddr_storage ss = {};
        bool ok;
        socklen_t len = sizeof(ss);

        if (listen_open(host, 0, true, fds, &n, &loopback, &port) < 0 || n == 0) {
                CHECK(family == AF_INET6, "listening on %s for listen_peer() (skipped only for IPv6)", host);
                return;
        }
        c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                inet_pton(AF_INET, host, &in->sin_addr);
                len = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                inet_pton(AF_INET6, host, &in6->sin6_addr);
                len = sizeof(*in6);
        }
        if (c >= 0 && connect(c, (struct sockaddr *) &ss, len) == 0) {
                struct pollfd p = { .fd = fds[0], .events = POLLIN };

                (void) poll(&p, 1, 5000);
                a = accept4(fds[0], NULL, NULL, SOCK_CLOEXEC);
        }
        len = sizeof(ss);
        if (c >= 0 && getsockname(c, (struct sockaddr *) &ss, &len) == 0)
                snprintf(want_name, sizeof(want_name), family == AF_INET ? "%s:%u" : "[%s]:%u", host,
                         family == AF_INET ? ntohs(((struct sockaddr_in *) &ss)->sin_port)
                                           : ntohs(((struct sockaddr_in6 *) &ss)->sin6_port));
        ok = a >= 0 && listen_peer(a, name, source) == 0 && streq(name, want_name) && streq(source, want_source);
        CHECK(ok, "listen_peer(): a client from %s is '%s', counted against '%s'", host, ok ? name : "?",
              ok ? source : "?");
        safe_close(a);
        safe_close(c);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

static void test_listen_peer(void) {
        check_peer(AF_INET, "127.0.0.1", "127.0.0.1");
        check_peer(AF_INET6, "::1", "::/64");
}

static char dir[] = "/tmp/orrery-vnc-test-XXXXXX";

static const char *write_file(const char *name, const char *content, mode_t mode) {
        static char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t) strlen(content))
                abort();
        close(fd);
        if (chmod(path, mode) < 0)
                abort();
        return path;
}

static void test_passwords(void) {
        Passwords p = {};

        CHECK(passwords_read(write_file("ok", "secret\nview\n", 0600), &p) == 0 && p.list[0] &&
                      strcmp(p.list[0], "secret") == 0 && p.list[1] && strcmp(p.list[1], "view") == 0 && !p.list[2] &&
                      p.first_view_only == 1,
              "mode 0600: line 1 the password, line 2 the view-only one");
        passwords_done(&p);
        CHECK(passwords_read(write_file("one", "secret", 0400), &p) == 0 && strcmp(p.list[0], "secret") == 0 &&
                      !p.list[1],
              "mode 0400, one line without a newline: no view-only password");
        passwords_done(&p);
        CHECK(passwords_read(write_file("crlf", "secret\r\n", 0600), &p) == 0 && strcmp(p.list[0], "secret") == 0,
              "a CRLF line ending is not part of the password");
        passwords_done(&p);
        CHECK(passwords_read(write_file("g", "secret\n", 0640), &p) == -EPERM, "group-readable: -EPERM");
        CHECK(passwords_read(write_file("o", "secret\n", 0604), &p) == -EPERM, "other-readable: -EPERM");
        CHECK(passwords_read(write_file("w", "secret\n", 0620), &p) == -EPERM, "group-writable: -EPERM");
        CHECK(passwords_read(write_file("empty", "", 0600), &p) == -EBADMSG, "an empty file: -EBADMSG");
        CHECK(passwords_read(write_file("blank", "\nview\n", 0600), &p) == -EBADMSG, "an empty first line: -EBADMSG");
        CHECK(passwords_read(write_file("nul", "se\0cret", 0600), &p) == 0, "a file with text only is fine");
        passwords_done(&p);
        CHECK(passwords_read(dir, &p) == -EUCLEAN, "a directory: -EUCLEAN");
        CHECK(passwords_read("/nonexistent/password", &p) == -ENOENT, "a missing file: -ENOENT");
        {
                char *big = malloc(PASSWORD_FILE_MAX + 2);
                memset(big, 'x', PASSWORD_FILE_MAX + 1);
                big[PASSWORD_FILE_MAX + 1] = 0;
                CHECK(passwords_read(write_file("big", big, 0600), &p) == -EBADMSG, "a file over 4096 bytes: -EBADMSG");
                free(big);
        }

        unsetenv("CREDENTIALS_DIRECTORY");
        CHECK(passwords_credential_path() == NULL, "no $CREDENTIALS_DIRECTORY: no credential");
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        write_file(PASSWORD_CREDENTIAL, "cred\n", 0400);
        CHECK(passwords_credential_path() && strstr(passwords_credential_path(), "/vnc-password"),
              "$CREDENTIALS_DIRECTORY/vnc-password is found");
        unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_placeholder(void) {
        uint32_t w = 320, h = 200, *px = calloc((size_t) w * h, 4);
        size_t fg = 0;

        placeholder_draw(px, w, h, "VM NOT RUNNING");
        for (size_t i = 0; i < (size_t) w * h; i++)
                fg += px[i] == PLACEHOLDER_FOREGROUND;
        CHECK(px[0] == PLACEHOLDER_BACKGROUND && fg > 100, "the placeholder is a dark screen with text (%zu text pixels)",
              fg);
        placeholder_draw(px, 16, 16, "VM NOT RUNNING");
        CHECK(px[0] == PLACEHOLDER_BACKGROUND, "a screen too small for the text is plain");
        free(px);
}

static void test_guard(void) {
        static Guard g;
        const uint64_t t = 1000000000ULL;
        char name[32];

        CHECK(guard_delay_for(0) == 0 && guard_delay_for(1) == 500000 && guard_delay_for(2) == 1000000 &&
                      guard_delay_for(4) == 4000000 && guard_delay_for(8) == 60000000 &&
                      guard_delay_for(1000) == 60000000,
              "the delay is 0.5 s after one failure, doubling, at most 60 s");
        CHECK(guard_next_allowed(&g, "10.0.0.1", t) == 0, "a source without failures is answered at once");
        CHECK(guard_failure(&g, "10.0.0.1", t) == 1 && guard_next_allowed(&g, "10.0.0.1", t) == t + 500000 &&
                      guard_next_allowed(&g, "10.0.0.1", t + 500000) == 0,
              "after a failure the source waits 0.5 s from it");
        CHECK(guard_next_allowed(&g, "10.0.0.2", t) == 0, "another source is not affected");
        CHECK(guard_failure(&g, "10.0.0.1", t + 600000) == 2 &&
                      guard_next_allowed(&g, "10.0.0.1", t + 600000) == t + 1600000,
              "a second failure: 1 s");
        guard_success(&g, "10.0.0.1");
        CHECK(guard_next_allowed(&g, "10.0.0.1", t + 700000) == 0 && guard_failure(&g, "10.0.0.1", t + 700000) == 1,
              "a right password clears the source");
        CHECK(guard_failure(&g, "10.0.0.1", t + 700000 + GUARD_FORGET_USEC) == 1,
              "failures older than GUARD_FORGET_USEC are forgotten");
        for (unsigned i = 0; i < 2 * GUARD_SOURCES; i++) {
                snprintf(name, sizeof(name), "10.1.%u.%u", i / 256, i % 256);
                (void) guard_failure(&g, name, t + 2 * GUARD_FORGET_USEC + i);
        }
        CHECK(guard_next_allowed(&g, "10.1.0.0", t + 2 * GUARD_FORGET_USEC + 1000) == 0 &&
                      guard_next_allowed(&g, "10.1.1.255", t + 2 * GUARD_FORGET_USEC + 1000) != 0,
              "with more sources than the table holds, the oldest are forgotten and the newest kept");
}

int main(void) {
        if (!mkdtemp(dir))
                return 1;
        test_keymap_us();
        test_keymap_layouts();
        test_listen_spec();
        test_listen_open();
        test_listen_peer();
        test_passwords();
        test_placeholder();
        test_guard();
        {
                char cmd[600];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void) !system(cmd);
        }
        return tap_finish();
}
