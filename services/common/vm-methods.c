/* SPDX-License-Identifier: MIT */

/*
 * What a client asks of a VM: Machine1 actions, Keyboard1/Mouse1 input,
 * Chardev1 registration and scrollback. User calls go to the VM's
 * well-known name; each async call is a Call owned by the VM (cancelled on
 * detach), each sync call blocks for at most the client's timeout.
 */

#include <string.h>
#include <sys/socket.h>

#include "orrery-client-internal.h"

static const char *const action_strings[_ORRERY_VM_ACTION_MAX] = {
        [ORRERY_VM_ACTION_PAUSE] = "pause",
        [ORRERY_VM_ACTION_RESUME] = "resume",
        [ORRERY_VM_ACTION_RESET] = "reset",
        [ORRERY_VM_ACTION_POWER_DOWN] = "power-down",
        [ORRERY_VM_ACTION_QUIT] = "quit",
};

static const char *const action_methods[_ORRERY_VM_ACTION_MAX] = {
        [ORRERY_VM_ACTION_PAUSE] = "Pause",
        [ORRERY_VM_ACTION_RESUME] = "Resume",
        [ORRERY_VM_ACTION_RESET] = "Reset",
        [ORRERY_VM_ACTION_POWER_DOWN] = "PowerDown",
        [ORRERY_VM_ACTION_QUIT] = "Quit",
};

int orrery_vm_action_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < _ORRERY_VM_ACTION_MAX; i++)
                if (streq(s, action_strings[i]))
                        return i;
        return -EINVAL;
}

const char *orrery_vm_action_to_string(OrreryVmAction action) {
        return (unsigned) action < _ORRERY_VM_ACTION_MAX ? action_strings[action] : NULL;
}

const char *orrery_vm_action_to_method(OrreryVmAction action) {
        return (unsigned) action < _ORRERY_VM_ACTION_MAX ? action_methods[action] : NULL;
}

static int chardev_path(OrreryVm *vm, const char *id, char buf[static ORRERY_PATH_MAX]) {
        if (!orrery_chardev_id_is_valid(id))
                return -EINVAL;
        snprintf(buf, ORRERY_PATH_MAX, "%s/Chardev/%s", vm->path, id);
        return 0;
}

static int reply_errno(sd_bus_message *reply) {
        int e = sd_bus_message_get_errno(reply);

        return e > 0 ? -e : sd_bus_message_is_method_error(reply, NULL) ? -EIO : 0;
}

/* Sends c with m; on failure frees c. */
static int send_call(OrreryVm *vm, Call *c, sd_bus_message *m) {
        int r = vm_call_send(vm, c, m);

        if (r < 0)
                vm_call_free(c);
        return r;
}

/* ---------------------------------------------------------------------- */
/* Machine1                                                                */

int orrery_vm_action(OrreryVm *vm, OrreryVmAction action, OrreryVmReplyFn callback, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const char *method = orrery_vm_action_to_method(action);
        Call *c;
        int r;

        if (!vm || vm->detached || !method)
                return -EINVAL;

        r = vm_new_method_call(vm, false, vm->path, "org.orrery.Machine1", method, &m);
        if (r < 0)
                return r;
        c = vm_call_new(vm, CALL_ACTION, method);
        if (!c)
                return -ENOMEM;
        c->callback.reply = callback;
        c->userdata = userdata;
        return send_call(vm, c, m);
}

int orrery_vm_action_sync(OrreryVm *vm, OrreryVmAction action, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const char *method = orrery_vm_action_to_method(action);
        int r;

        if (!vm || vm->detached || !method)
                return -EINVAL;

        r = vm_new_method_call(vm, false, vm->path, "org.orrery.Machine1", method, &m);
        if (r < 0)
                return r;
        r = sd_bus_call(vm->client->bus, m, vm->client->timeout_usec, ret_error, NULL);
        return r < 0 ? r : 0;
}

/* ---------------------------------------------------------------------- */
/* Input: fire and forget                                                  */

static int send_input(OrreryVm *vm, const char *iface, const char *member, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        Call *c;
        int r;

        if (!vm || vm->detached)
                return -EINVAL;
        if (!vm->ready)
                return -ENXIO;

        r = vm_new_method_call(vm, false, vm->path, iface, member, &m);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(m, types, ap);
        va_end(ap);
        if (r < 0)
                return r;

        if (!vm->cb.error) {
                /* Nobody would hear about failures: do not even ask for a reply. */
                r = sd_bus_message_set_expect_reply(m, false);
                if (r < 0)
                        return r;
                r = sd_bus_send(vm->client->bus, m, NULL);
                return r < 0 ? r : 0;
        }

        c = vm_call_new(vm, CALL_INPUT, member);
        if (!c)
                return -ENOMEM;
        return send_call(vm, c, m);
}

int orrery_vm_key_press(OrreryVm *vm, uint32_t code) {
        return send_input(vm, "org.orrery.Keyboard1", "Press", "u", code);
}

int orrery_vm_key_release(OrreryVm *vm, uint32_t code) {
        return send_input(vm, "org.orrery.Keyboard1", "Release", "u", code);
}

int orrery_vm_mouse_set_abs_position(OrreryVm *vm, uint32_t x, uint32_t y) {
        return send_input(vm, "org.orrery.Mouse1", "SetAbsPosition", "uu", x, y);
}

int orrery_vm_mouse_rel_motion(OrreryVm *vm, int32_t dx, int32_t dy) {
        return send_input(vm, "org.orrery.Mouse1", "RelMotion", "ii", dx, dy);
}

int orrery_vm_mouse_press(OrreryVm *vm, uint32_t button) {
        return send_input(vm, "org.orrery.Mouse1", "Press", "u", button);
}

int orrery_vm_mouse_release(OrreryVm *vm, uint32_t button) {
        return send_input(vm, "org.orrery.Mouse1", "Release", "u", button);
}

int orrery_vm_mouse_wheel(OrreryVm *vm, int32_t vertical, int32_t horizontal) {
        return send_input(vm, "org.orrery.Mouse1", "Wheel", "ii", vertical, horizontal);
}

/* ---------------------------------------------------------------------- */
/* Chardev1                                                                */

/* Builds Register(h) for a new socketpair; *ret_fd is the caller's end. */
static int new_register_call(OrreryVm *vm, const char *id, sd_bus_message **ret_m, int *ret_fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char path[ORRERY_PATH_MAX];
        int pair[2], r;

        if (!vm || vm->detached)
                return -EINVAL;
        r = chardev_path(vm, id, path);
        if (r < 0)
                return r;
        r = sd_bus_can_send(vm->client->bus, SD_BUS_TYPE_UNIX_FD);
        if (r < 0)
                return r;
        if (r == 0)
                return -EOPNOTSUPP;

        r = vm_new_method_call(vm, false, path, "org.orrery.Chardev1", "Register", &m);
        if (r < 0)
                return r;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                return -errno;
        /* The message takes a duplicate of the VM's end; ours closes here,
         * so the caller sees EOF when the VM lets go of the device. */
        r = sd_bus_message_append(m, "h", pair[1]);
        safe_close(pair[1]);
        if (r < 0) {
                safe_close(pair[0]);
                return r;
        }
        *ret_m = TAKE_PTR(m);
        *ret_fd = pair[0];
        return 0;
}

int orrery_vm_chardev_register(OrreryVm *vm, const char *id, OrreryChardevRegisterFn callback, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_close_ int fd = -1;
        Call *c;
        int r;

        if (!callback)
                return -EINVAL;
        r = new_register_call(vm, id, &m, &fd);
        if (r < 0)
                return r;
        c = vm_call_new(vm, CALL_REGISTER, "Register");
        if (!c)
                return -ENOMEM;
        c->id = strdup(id);
        if (!c->id) {
                vm_call_free(c);
                return -ENOMEM;
        }
        c->fd = TAKE_FD(fd);
        c->callback.reg = callback;
        c->userdata = userdata;
        return send_call(vm, c, m);
}

int orrery_vm_chardev_register_sync(OrreryVm *vm, const char *id, int *ret_fd, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (!ret_fd)
                return -EINVAL;
        r = new_register_call(vm, id, &m, &fd);
        if (r < 0)
                return r;
        r = sd_bus_call(vm->client->bus, m, vm->client->timeout_usec, ret_error, NULL);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int new_chardev_call(OrreryVm *vm, const char *id, const char *member, sd_bus_message **ret) {
        char path[ORRERY_PATH_MAX];
        int r;

        if (!vm || vm->detached)
                return -EINVAL;
        r = chardev_path(vm, id, path);
        if (r < 0)
                return r;
        return vm_new_method_call(vm, false, path, "org.orrery.Chardev1", member, ret);
}

int orrery_vm_chardev_unregister(OrreryVm *vm, const char *id, OrreryVmReplyFn callback, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Call *c;
        int r;

        r = new_chardev_call(vm, id, "Unregister", &m);
        if (r < 0)
                return r;
        c = vm_call_new(vm, CALL_UNREGISTER, "Unregister");
        if (!c)
                return -ENOMEM;
        c->callback.reply = callback;
        c->userdata = userdata;
        return send_call(vm, c, m);
}

int orrery_vm_chardev_unregister_sync(OrreryVm *vm, const char *id, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_chardev_call(vm, id, "Unregister", &m);
        if (r < 0)
                return r;
        r = sd_bus_call(vm->client->bus, m, vm->client->timeout_usec, ret_error, NULL);
        return r < 0 ? r : 0;
}

static int read_scrollback(sd_bus_message *reply, const void **ret_data, size_t *ret_size) {
        const void *p;
        size_t n;
        int r;

        r = sd_bus_message_read_array(reply, 'y', &p, &n);
        if (r < 0)
                return r;
        if (n > ORRERY_MAX_SCROLLBACK)
                return -EBADMSG;
        *ret_data = n > 0 ? p : NULL;
        *ret_size = n;
        return 0;
}

int orrery_vm_chardev_get_scrollback(OrreryVm *vm, const char *id, OrreryScrollbackFn callback, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Call *c;
        int r;

        if (!callback)
                return -EINVAL;
        r = new_chardev_call(vm, id, "GetScrollback", &m);
        if (r < 0)
                return r;
        c = vm_call_new(vm, CALL_SCROLLBACK, "GetScrollback");
        if (!c)
                return -ENOMEM;
        c->id = strdup(id);
        if (!c->id) {
                vm_call_free(c);
                return -ENOMEM;
        }
        c->callback.scrollback = callback;
        c->userdata = userdata;
        return send_call(vm, c, m);
}

int orrery_vm_chardev_get_scrollback_sync(OrreryVm *vm, const char *id, void **ret_data, size_t *ret_size,
                                          sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const void *p;
        void *copy = NULL;
        size_t n;
        int r;

        if (!ret_data || !ret_size)
                return -EINVAL;
        r = new_chardev_call(vm, id, "GetScrollback", &m);
        if (r < 0)
                return r;
        r = sd_bus_call(vm->client->bus, m, vm->client->timeout_usec, ret_error, &reply);
        if (r < 0)
                return r;
        r = read_scrollback(reply, &p, &n);
        if (r < 0)
                return r;
        if (n > 0) {
                copy = malloc(n);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, p, n);
        }
        *ret_data = copy;
        *ret_size = n;
        return 0;
}

/* ---------------------------------------------------------------------- */

void vm_methods_dispatch_reply(Call *c, sd_bus_message *reply) {
        OrreryVm *vm = c->vm;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r = reply_errno(reply);

        switch (c->kind) {
        case CALL_ACTION:
        case CALL_UNREGISTER:
                if (c->callback.reply) {
                        if (!vm->detached)
                                c->callback.reply(vm, r, e, c->userdata);
                } else if (r < 0)
                        vm_report_error(vm, c->method, e);
                break;

        case CALL_INPUT:
                if (r < 0)
                        vm_report_error(vm, c->method, e);
                break;

        case CALL_REGISTER:
                if (vm->detached)
                        break;
                if (r < 0)
                        c->callback.reg(vm, c->id, r, e, c->userdata);
                else
                        c->callback.reg(vm, c->id, TAKE_FD(c->fd), NULL, c->userdata);
                break;

        case CALL_SCROLLBACK: {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                const void *p = NULL;
                size_t n = 0;

                if (vm->detached)
                        break;
                if (r >= 0) {
                        r = read_scrollback(reply, &p, &n);
                        if (r < 0) {
                                sd_bus_error_set_errnof(&error, r, "Bad GetScrollback reply: %s", strerror(-r));
                                e = &error;
                        }
                }
                c->callback.scrollback(vm, c->id, r, p, n, r < 0 ? e : NULL, c->userdata);
                break;
        }

        default:
                break;
        }
}
