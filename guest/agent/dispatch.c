/* SPDX-License-Identifier: MIT */
/*
 * From a parsed request to a reply: the checks QGA's dispatcher makes (an
 * object with "execute", optional "arguments" and "id", nothing else), the
 * command lookup, the parameter checks against each command's Param list,
 * and the error texts QGA uses for each of them, so that clients written
 * against QEMU's agent see the same answers.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static char *vformat(const char *format, va_list ap) {
        char *s = NULL;

        if (vasprintf(&s, format, ap) < 0)
                return NULL;
        return s;
}

void reply_return(Reply *reply, json_object *result) {
        json_object_put(reply->result);
        reply->result = result;
}

static int reply_verror(Reply *reply, const char *error_class, const char *suffix, const char *format, va_list ap) {
        _cleanup_free_ char *desc = vformat(format, ap);

        free(reply->error_desc);
        reply->error_class = error_class;
        if (desc && suffix) {
                if (asprintf(&reply->error_desc, "%s: %s", desc, suffix) < 0)
                        reply->error_desc = NULL;
        } else
                reply->error_desc = TAKE_PTR(desc);
        return -1;
}

int reply_error(Reply *reply, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        reply_verror(reply, "GenericError", NULL, format, ap);
        va_end(ap);
        return -1;
}

int reply_error_errno(Reply *reply, int error, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        reply_verror(reply, "GenericError", strerror(error < 0 ? -error : error), format, ap);
        va_end(ap);
        return -1;
}

int reply_error_class(Reply *reply, const char *error_class, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        reply_verror(reply, error_class, NULL, format, ap);
        va_end(ap);
        return -1;
}

void reply_clear(Reply *reply) {
        json_object_put(reply->result);
        free(reply->error_desc);
        *reply = (Reply) {};
}

bool utf8_valid(const char *s) {
        const uint8_t *p = (const uint8_t *) s;

        while (*p) {
                size_t n;
                uint32_t c;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if ((*p & 0xe0) == 0xc0)
                        n = 1, c = *p & 0x1f;
                else if ((*p & 0xf0) == 0xe0)
                        n = 2, c = *p & 0x0f;
                else if ((*p & 0xf8) == 0xf0)
                        n = 3, c = *p & 0x07;
                else
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        c = c << 6 | (p[i] & 0x3f);
                }
                /* Overlong forms, surrogates and values past U+10FFFF. */
                if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
                    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                        return false;
                p += n + 1;
        }
        return true;
}

/* ------------------------------------------------------------ arguments */

static bool is_int64(json_object *o) {
        if (!json_object_is_type(o, json_type_int))
                return false;
        /* json-c keeps integers above INT64_MAX as uint64; QGA's "int" is int64. */
        return !(json_object_get_int64(o) == INT64_MAX && json_object_get_uint64(o) > (uint64_t) INT64_MAX);
}

int64_t arg_int(json_object *args, const char *name, int64_t fallback) {
        json_object *o;

        if (!args || !json_object_object_get_ex(args, name, &o))
                return fallback;
        return json_object_get_int64(o);
}

const char *arg_string(json_object *args, const char *name, const char *fallback) {
        json_object *o;

        if (!args || !json_object_object_get_ex(args, name, &o) || !json_object_is_type(o, json_type_string))
                return fallback;
        return json_object_get_string(o);
}

size_t arg_string_len(json_object *args, const char *name) {
        json_object *o;

        if (!args || !json_object_object_get_ex(args, name, &o) || !json_object_is_type(o, json_type_string))
                return 0;
        return (size_t) json_object_get_string_len(o);
}

bool arg_bool(json_object *args, const char *name, bool fallback) {
        json_object *o;

        if (!args || !json_object_object_get_ex(args, name, &o))
                return fallback;
        return json_object_get_boolean(o);
}

bool arg_has(json_object *args, const char *name) {
        return args && json_object_object_get_ex(args, name, NULL);
}

static bool param_type_ok(const Param *p, json_object *v) {
        switch (p->type) {
        case PARAM_INT:
                return is_int64(v);
        case PARAM_STRING:
                return json_object_is_type(v, json_type_string);
        case PARAM_BOOL:
                return json_object_is_type(v, json_type_boolean);
        case PARAM_STRING_ARRAY: {
                size_t n;

                if (!json_object_is_type(v, json_type_array))
                        return false;
                n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++)
                        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
                                return false;
                return true;
        }
        case PARAM_INT_OR_STRING:
                return is_int64(v) || json_object_is_type(v, json_type_string);
        }
        return false;
}

static const char *param_type_name(ParamType type) {
        switch (type) {
        case PARAM_INT:
                return "integer";
        case PARAM_STRING:
                return "string";
        case PARAM_BOOL:
                return "boolean";
        case PARAM_STRING_ARRAY:
                return "array of strings";
        case PARAM_INT_OR_STRING:
                return "integer or string";
        }
        return "?";
}

/* QGA's order: each declared parameter in turn (missing, then wrong type), then anything undeclared. */
static int check_params(const Command *command, json_object *args, Reply *reply) {
        for (const Param *p = command->params; p && p->name; p++) {
                json_object *v;

                if (!args || !json_object_object_get_ex(args, p->name, &v)) {
                        if (p->optional)
                                continue;
                        return reply_error(reply, "Parameter '%s' is missing", p->name);
                }
                if (!param_type_ok(p, v))
                        return reply_error(reply, "Invalid parameter type for '%s', expected: %s", p->name,
                                           param_type_name(p->type));
        }

        if (args) {
                json_object_object_foreach(args, key, value) {
                        bool known = false;

                        (void) value;
                        for (const Param *p = command->params; p && p->name && !known; p++)
                                known = streq(p->name, key);
                        if (!known)
                                return reply_error(reply, "Parameter '%s' is unexpected", key);
                }
        }
        return 0;
}

/* ------------------------------------------------------------- commands */

typedef const Command *(*CommandGroup)(size_t *ret_n);

static const CommandGroup groups[] = {
        system_commands,
        file_commands,
        fsfreeze_commands,
        exec_commands,
};

void commands_foreach(CommandVisitor visit, void *userdata) {
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                size_t n;
                const Command *table = groups[g](&n);

                for (size_t i = 0; i < n; i++)
                        visit(&table[i], userdata);
        }
}

bool command_enabled(const Agent *agent, const Command *command) {
        if (agent->block_system && (command->flags & COMMAND_SYSTEM))
                return false;
        return !agent->frozen || (command->flags & COMMAND_ALLOWED_FROZEN);
}

static const Command *command_find(const char *name) {
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                size_t n;
                const Command *table = groups[g](&n);

                for (size_t i = 0; i < n; i++)
                        if (streq(table[i].name, name))
                                return &table[i];
        }
        return NULL;
}

void dispatch_request(Agent *agent, json_object *request, Reply *reply, json_object **ret_id) {
        json_object *execute = NULL, *args = NULL;
        const Command *command;
        const char *name;

        *ret_id = NULL;
        if (!json_object_is_type(request, json_type_object)) {
                reply_error(reply, "QMP input must be a JSON object");
                return;
        }
        /* The id goes back with every answer, errors included. */
        (void) json_object_object_get_ex(request, "id", ret_id);

        json_object_object_foreach(request, key, value) {
                if (streq(key, "execute")) {
                        if (!json_object_is_type(value, json_type_string)) {
                                reply_error(reply, "QMP input member 'execute' must be a string");
                                return;
                        }
                        execute = value;
                } else if (streq(key, "arguments")) {
                        if (!json_object_is_type(value, json_type_object)) {
                                reply_error(reply, "QMP input member 'arguments' must be an object");
                                return;
                        }
                        args = value;
                } else if (!streq(key, "id")) {
                        reply_error(reply, "QMP input member '%s' is unexpected", key);
                        return;
                }
        }
        if (!execute) {
                reply_error(reply, "QMP input lacks member 'execute'");
                return;
        }

        name = json_object_get_string(execute);
        command = command_find(name);
        if (!command) {
                reply_error_class(reply, "CommandNotFound", "The command %s has not been found", name);
                return;
        }
        if (!command_enabled(agent, command)) {
                reply_error_class(reply, "CommandNotFound", "Command %s has been disabled: %s", name,
                                  agent->frozen && !(command->flags & COMMAND_ALLOWED_FROZEN) ?
                                  "the agent is in frozen state" : "the agent runs with --stdio");
                return;
        }
        if (check_params(command, args, reply) < 0)
                return;

        if (command->run(agent, args, reply) >= 0 && !reply->error_class && !reply->no_response && !reply->result)
                reply->result = json_object_new_object();
}
