/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: what orrery-vnc does with client input once
 * libvncserver has parsed it (services/vnc/server.c's key and pointer
 * hooks, the US keymap, per-client and shared key/button holding, client
 * disconnects, resizes, the VM going away), driven by a byte program.
 *
 * server.c is included so its static hooks run as they are; the VM is a
 * fake that checks what a guest would see:
 *   - key codes and buttons are valid evdev codes, positions are on the screen;
 *   - a key (button) is never pressed twice nor released when not held;
 *   - once every client has gone, nothing is held in the guest.
 * A broken invariant aborts (a crash for libFuzzer, a failed test for the
 * gcc driver of fuzz-driver.c). Client cut text is not handled by
 * orrery-vnc (libvncserver's default drops it), so it has nothing to fuzz.
 *
 * Program: a sequence of operations, the first byte choosing the operation:
 *   key      client, down, keysym (4 bytes, little-endian)
 *   pointer  client, mask (2 bytes), x, y (2 bytes each, signed)
 *   leave    client (it disconnects; a new client takes its slot)
 *   resize   width, height (2 bytes each, 0..4095)
 *   viewonly client
 *   vanish   client (ignored; the VM goes and comes back: its input state is gone)
 *   batch    client (the end of its batch of messages: its motion is sent)
 */
#include "../../services/vnc/server.c"

#define N_SLOTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fake VM ---- */

static struct {
        bool ready;
        uint8_t keys[KEY_CODES];
        uint8_t buttons[KEY_CODES];
        uint32_t width, height;
        uint64_t calls;
} fake;

static _noreturn_ void violation(const char *what, uint32_t value) {
        fprintf(stderr, "fuzz-vnc-input: %s (%u)\n", what, value);
        abort();
}

bool orrery_vm_is_ready(OrreryVm *vm) {
        return fake.ready;
}

int orrery_vm_key_press(OrreryVm *vm, uint32_t code) {
        if (code >= KEY_CODES)
                violation("key code out of range", code);
        if (fake.keys[code])
                violation("key pressed twice", code);
        fake.keys[code] = 1;
        fake.calls++;
        return 0;
}

int orrery_vm_key_release(OrreryVm *vm, uint32_t code) {
        if (code >= KEY_CODES)
                violation("key code out of range", code);
        if (!fake.keys[code])
                violation("key released but not held", code);
        fake.keys[code] = 0;
        fake.calls++;
        return 0;
}

static void check_button(uint32_t button) {
        if (button < BTN_MOUSE || button > BTN_TASK)
                violation("not a mouse button", button);
}

int orrery_vm_mouse_press(OrreryVm *vm, uint32_t button) {
        check_button(button);
        if (fake.buttons[button])
                violation("button pressed twice", button);
        fake.buttons[button] = 1;
        fake.calls++;
        return 0;
}

int orrery_vm_mouse_release(OrreryVm *vm, uint32_t button) {
        check_button(button);
        if (!fake.buttons[button])
                violation("button released but not held", button);
        fake.buttons[button] = 0;
        fake.calls++;
        return 0;
}

int orrery_vm_mouse_set_abs_position(OrreryVm *vm, uint32_t x, uint32_t y) {
        if (x >= fake.width)
                violation("pointer x beyond the screen", x);
        if (y >= fake.height)
                violation("pointer y beyond the screen", y);
        fake.calls++;
        return 0;
}

int orrery_vm_mouse_wheel(OrreryVm *vm, int32_t vertical, int32_t horizontal) {
        if (vertical < -1 || vertical > 1 || horizontal < -1 || horizontal > 1 || (vertical == 0 && horizontal == 0))
                violation("wheel step out of range", (uint32_t) (vertical * 16 + horizontal));
        fake.calls++;
        return 0;
}

/* Not reached from the input paths; present for the link. */
int orrery_vm_get_framebuffer(OrreryVm *vm, uint32_t console, OrreryFramebuffer *ret) {
        return -ENODEV;
}
const char *orrery_vm_get_owner(OrreryVm *vm) {
        return NULL;
}
sd_bus *orrery_client_get_bus(OrreryClient *c) {
        return NULL;
}
int orrery_vm_attach(OrreryClient *c, const char *name, const OrreryVmCallbacks *callbacks, void *userdata,
                     OrreryVmAttachFlags flags, OrreryVm **ret) {
        return -ENOTSUP;
}
OrreryVm *orrery_vm_detach(OrreryVm *vm) {
        return NULL;
}
OrreryClient *orrery_client_ref(OrreryClient *c) {
        return c;
}
OrreryClient *orrery_client_unref(OrreryClient *c) {
        return NULL;
}

/* ---- the harness ---- */

static Keymap *keymap;
static char fake_vm_handle; /* the fake VM's address: never dereferenced */
static Server server;
static rfbClientRec rfb_clients[N_SLOTS];
static VncClient *slots[N_SLOTS];

/* A client past its handshake in slot i, as on_new_client() and client_check_done() leave it. */
static void slot_connect(unsigned i) {
        VncClient *vc = calloc(1, sizeof(VncClient));

        if (!vc)
                abort();
        memset(&rfb_clients[i], 0, sizeof(rfb_clients[i]));
        rfb_clients[i].clientData = vc;
        rfb_clients[i].sock = 1000 + (int) i; /* never used: no call reaches libvncserver */
        vc->server = &server;
        vc->cl = &rfb_clients[i];
        vc->fd = -1;
        snprintf(vc->name, sizeof(vc->name), "fuzz:%u", i);
        snprintf(vc->source, sizeof(vc->source), "fuzz");
        vc->next = server.clients;
        if (server.clients)
                server.clients->prev = vc;
        server.clients = vc;
        server.n_clients++;
        slots[i] = vc;
}

static void slot_leave(unsigned i) {
        on_client_gone(&rfb_clients[i]); /* frees the VncClient */
        slots[i] = NULL;
}

static void set_size(uint32_t width, uint32_t height) {
        server.width = fake.width = width;
        server.height = fake.height = height;
}

static void reset(void) {
        if (!keymap && keymap_new("us", NULL, &keymap) < 0)
                abort();
        memset(&server, 0, sizeof(server));
        memset(&fake, 0, sizeof(fake));
        server.keymap = keymap;
        server.vm = (OrreryVm *) &fake_vm_handle;
        server.showing_vm = true;
        fake.ready = true;
        set_size(1024, 768);
        for (unsigned i = 0; i < N_SLOTS; i++)
                slot_connect(i);
}

static void flush_all(void) {
        for (unsigned i = 0; i < N_SLOTS; i++)
                client_flush_motion(slots[i]);
}

typedef struct Reader {
        const uint8_t *p;
        size_t left;
} Reader;

static uint32_t take(Reader *r, size_t n) {
        uint32_t v = 0;

        for (size_t i = 0; i < n; i++) {
                if (r->left == 0)
                        return v;
                v |= (uint32_t) *r->p++ << (8 * i);
                r->left--;
        }
        return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Reader r = { data, size };

        log_set_max_level(LOG_WARNING); /* the debug lines cost more than the code under test */
        reset();
        while (r.left > 0) {
                uint32_t op = take(&r, 1) % 7;
                unsigned i = take(&r, 1) % N_SLOTS;

                switch (op) {
                case 0: {
                        bool down = take(&r, 1) & 1;
                        on_key(down, (rfbKeySym) take(&r, 4), &rfb_clients[i]);
                        break;
                }
                case 1: {
                        int mask = (int) take(&r, 2);
                        int x = (int16_t) take(&r, 2), y = (int16_t) take(&r, 2);
                        on_pointer(mask, x, y, &rfb_clients[i]);
                        break;
                }
                case 2:
                        slot_leave(i);
                        slot_connect(i);
                        break;
                case 3: {
                        uint32_t width, height;

                        /* A resize arrives between two client batches, each ending with its motion sent. */
                        flush_all();
                        width = take(&r, 2) % 4096;
                        height = take(&r, 2) % 4096;
                        set_size(width, height);
                        break;
                }
                case 4:
                        rfb_clients[i].viewOnly = !rfb_clients[i].viewOnly;
                        break;
                case 6:
                        /* The end of one client's batch of messages (client_process()). */
                        client_flush_motion(slots[i]);
                        break;
                case 5:
                        flush_all();
                        /* As on_vm_vanished() then on_vm_appeared(): the guest's input devices are new. */
                        forget_input(&server);
                        memset(fake.keys, 0, sizeof(fake.keys));
                        memset(fake.buttons, 0, sizeof(fake.buttons));
                        break;
                }
        }

        /* Everyone leaves: nothing may stay held in the guest. */
        for (unsigned i = 0; i < N_SLOTS; i++)
                slot_leave(i);
        for (uint32_t code = 0; code < KEY_CODES; code++) {
                if (fake.keys[code])
                        violation("key still held after every client left", code);
                if (fake.buttons[code])
                        violation("button still held after every client left", code);
        }
        if (server.clients || server.n_clients != 0)
                violation("clients left on the list", (uint32_t) server.n_clients);
        return 0;
}
