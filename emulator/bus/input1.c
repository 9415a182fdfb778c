/* SPDX-License-Identifier: MIT */

/*
 * org.orrery.Keyboard1 and org.orrery.Mouse1 (dbus/org.orrery.Keyboard1.xml,
 * dbus/org.orrery.Mouse1.xml): input for the guest's virtio-input keyboard
 * and tablet. Codes are checked against what the devices declare; events
 * the guest cannot take yet are refused, never queued without bound.
 *
 * A client that leaves the bus (or is killed) while holding a key or a
 * button down would leave it stuck in the guest: what each client holds is
 * remembered, and released for it when it leaves (its BusPeer's watch),
 * and for everyone when the VM migrates away (input1_release_all()).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "macro.h"

#define WHEEL_MAX_NOTCHES 120

static int input_error(VmBus *b, int r, const char *what, uint32_t code, sd_bus_error *error) {
        if (r == -EINVAL)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "VM '%s' has no %s with code %u", b->name, what, code);
        if (r == -ENOBUFS)
                return sd_bus_error_setf(error, ORRERY_ERROR_BUSY,
                                         "VM '%s' is not reading its input fast enough; try again", b->name);
        return sd_bus_error_set_errnof(error, r, "Input to VM '%s' failed: %m", b->name);
}

static int property_leds(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "u", machine_keyboard_leds(b->machine));
}

static int release_held(VmBus *b, unsigned i) {
        struct BusHeldInput *h = &b->held[i];
        int r;

        r = h->button ? machine_pointer_button(b->machine, h->code, false) : machine_key(b->machine, h->code, false);
        free(h->sender);
        b->held[i] = b->held[--b->n_held];
        return r;
}

void input1_peer_gone(VmBus *b, BusPeer *peer) {
        for (unsigned i = 0; i < b->n_held;)
                if (streq(b->held[i].sender, peer->name))
                        (void) release_held(b, i); /* the last entry moved to i */
                else
                        i++;
}

/* A press succeeded: remember it for its sender (best effort: a full table only loses that safety net). */
static void remember_held(VmBus *b, BusPeer *peer, uint16_t code, bool button) {
        char *copy;

        if (b->n_held >= BUS_MAX_HELD)
                return;
        for (unsigned i = 0; i < b->n_held; i++)
                if (b->held[i].code == code && b->held[i].button == button && streq(b->held[i].sender, peer->name))
                        return;
        copy = strdup(peer->name);
        if (!copy)
                return;
        b->held[b->n_held++] = (struct BusHeldInput) { .sender = copy, .code = code, .button = button };
}

/* A release, by whoever: nobody holds that key any more. */
static void forget_held(VmBus *b, uint16_t code, bool button) {
        for (unsigned i = 0; i < b->n_held;)
                if (b->held[i].code == code && b->held[i].button == button) {
                        free(b->held[i].sender);
                        b->held[i] = b->held[--b->n_held];
                } else
                        i++;
}

void input1_release_all(VmBus *b) {
        while (b->n_held > 0)
                (void) release_held(b, b->n_held - 1);
}

void input1_teardown(VmBus *b) {
        for (unsigned i = 0; i < b->n_held; i++)
                free(b->held[i].sender);
        b->n_held = 0;
}

/* Keyboard1's and Mouse1's Press and Release: the code checked, and who holds what remembered. */
static int key_or_button(sd_bus_message *m, VmBus *b, bool button, bool pressed, sd_bus_error *error) {
        const char *what = button ? "button" : "key";
        BusPeer *peer;
        uint32_t code;
        int r;

        r = bus_check_caller(b, m, &peer, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "u", &code);
        if (r < 0)
                return r;
        /* Key code 0 is KEY_RESERVED; button codes are checked against the tablet's. */
        if ((!button && code == 0) || code > UINT16_MAX)
                return input_error(b, -EINVAL, what, code, error);
        r = button ? machine_pointer_button(b->machine, (uint16_t) code, pressed)
                   : machine_key(b->machine, (uint16_t) code, pressed);
        if (r < 0)
                return input_error(b, r, what, code, error);
        if (pressed)
                remember_held(b, peer, (uint16_t) code, button);
        else
                forget_held(b, (uint16_t) code, button);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_key_press(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return key_or_button(m, userdata, false, true, error);
}

static int method_key_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return key_or_button(m, userdata, false, false, error);
}

const sd_bus_vtable keyboard1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Leds", "u", property_leds, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Press", SD_BUS_ARGS("u", code), SD_BUS_NO_RESULT, method_key_press,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("u", code), SD_BUS_NO_RESULT, method_key_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

static int property_is_absolute(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        return sd_bus_message_append(reply, "b", machine_pointer_is_absolute(b->machine));
}

static int method_set_abs_position(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t x, y;
        int r;

        r = bus_check_caller(b, m, NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "uu", &x, &y);
        if (r < 0)
                return r;
        /* Beyond the screen: clamped to its edge (documented in the XML). */
        r = machine_pointer_abs(b->machine, x, y);
        if (r < 0)
                return input_error(b, r, "pointer position", 0, error);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_rel_motion(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int32_t dx, dy;
        int r;

        r = bus_check_caller(b, m, NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ii", &dx, &dy);
        if (r < 0)
                return r;
        r = machine_pointer_rel(b->machine, dx, dy);
        if (r < 0)
                return input_error(b, r, "pointer motion", 0, error);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_button_press(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return key_or_button(m, userdata, true, true, error);
}

static int method_button_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return key_or_button(m, userdata, true, false, error);
}

static int method_wheel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int32_t vertical, horizontal;
        int r;

        r = bus_check_caller(b, m, NULL, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "ii", &vertical, &horizontal);
        if (r < 0)
                return r;
        if (vertical < -WHEEL_MAX_NOTCHES || vertical > WHEEL_MAX_NOTCHES || horizontal < -WHEEL_MAX_NOTCHES ||
            horizontal > WHEEL_MAX_NOTCHES)
                return sd_bus_error_setf(error, ORRERY_ERROR_INVALID_ARGUMENT, "Wheel moves at most %d notches per call",
                                         WHEEL_MAX_NOTCHES);
        r = machine_pointer_wheel(b->machine, vertical, horizontal);
        if (r < 0)
                return input_error(b, r, "wheel", 0, error);
        return sd_bus_reply_method_return(m, NULL);
}

const sd_bus_vtable mouse1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("IsAbsolute", "b", property_is_absolute, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetAbsPosition", SD_BUS_ARGS("u", x, "u", y), SD_BUS_NO_RESULT, method_set_abs_position,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RelMotion", SD_BUS_ARGS("i", dx, "i", dy), SD_BUS_NO_RESULT, method_rel_motion,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Press", SD_BUS_ARGS("u", button), SD_BUS_NO_RESULT, method_button_press,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("u", button), SD_BUS_NO_RESULT, method_button_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Wheel", SD_BUS_ARGS("i", vertical, "i", horizontal), SD_BUS_NO_RESULT, method_wheel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};
