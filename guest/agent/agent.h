/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * orrery-guest-agent: a guest agent speaking QEMU's guest-agent protocol
 * (QGA) on the virtio port org.qemu.guest_agent.0. This header is shared
 * by the protocol loop (main.c), the dispatcher (dispatch.c) and the
 * command groups (commands-*.c).
 */

#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"

#define AGENT_VERSION "0.1.0"

/* The largest request accepted, in bytes; a larger one is answered with an error. */
#define AGENT_REQUEST_MAX (16U << 20)

/* guest-exec programs running (or not yet asked about) at once. */
#define AGENT_EXEC_MAX 16U


/* The outcome of one command. */
typedef struct Reply {
        json_object *result;     /* "return" value on success (owned) */
        const char *error_class; /* NULL on success */
        char *error_desc;        /* owned */
        bool no_response;        /* success that QGA answers with nothing (guest-shutdown) */
        bool delimited;          /* the response is preceded by a 0xFF byte (guest-sync-delimited) */
} Reply;

void reply_return(Reply *reply, json_object *result);
/* The reply_error*() functions return -1, so a handler can `return reply_error(...)`. */
_printf_(2, 3) int reply_error(Reply *reply, const char *format, ...);
_printf_(3, 4) int reply_error_errno(Reply *reply, int error, const char *format, ...);
_printf_(3, 4) int reply_error_class(Reply *reply, const char *error_class, const char *format, ...);
void reply_clear(Reply *reply);

/* The types a command parameter can have, as QGA's schema names them in errors. */
typedef enum ParamType {
        PARAM_INT,
        PARAM_STRING,
        PARAM_BOOL,
        PARAM_STRING_ARRAY,
        PARAM_INT_OR_STRING, /* guest-file-seek's whence */
} ParamType;

typedef struct Param {
        const char *name;
        ParamType type;
        bool optional;
} Param;

typedef struct Agent Agent;

typedef int (*CommandFunc)(Agent *agent, json_object *args, Reply *reply);

typedef enum CommandFlags {
        COMMAND_NO_SUCCESS_RESPONSE = 1 << 0, /* nothing is sent on success (guest-shutdown) */
        COMMAND_ALLOWED_FROZEN = 1 << 1,      /* runs while file systems are frozen */
        COMMAND_SYSTEM = 1 << 2,              /* acts on the whole system: refused with --stdio */
} CommandFlags;

typedef struct Command {
        const char *name;
        CommandFunc run;
        const Param *params; /* terminated by a NULL name; NULL: no parameters */
        CommandFlags flags;
} Command;

/* Arguments of a command, checked against its Param list before it runs. */
int64_t arg_int(json_object *args, const char *name, int64_t fallback);
const char *arg_string(json_object *args, const char *name, const char *fallback);
size_t arg_string_len(json_object *args, const char *name);
bool arg_bool(json_object *args, const char *name, bool fallback);
bool arg_has(json_object *args, const char *name);

/* Command groups. Each returns its table and its size. */
const Command *system_commands(size_t *ret_n);
const Command *file_commands(size_t *ret_n);
const Command *fsfreeze_commands(size_t *ret_n);
const Command *exec_commands(size_t *ret_n);

/* Whether a command may run now (not while frozen, not a system command with --stdio). */
bool command_enabled(const Agent *agent, const Command *command);

/* Every command, for guest-info. */
typedef void (*CommandVisitor)(const Command *command, void *userdata);
void commands_foreach(CommandVisitor visit, void *userdata);

/* Handles one parsed request; fills reply (which may then carry no response). */
void dispatch_request(Agent *agent, json_object *request, Reply *reply, json_object **ret_id);

/* Agent-wide state the command groups share. */
struct Agent {
        bool block_system;         /* --stdio: refuse COMMAND_SYSTEM commands (shutdown, fsfreeze, exec) */
        bool frozen;               /* guest-fsfreeze-freeze succeeded and no thaw yet */
        const char *state_dir;     /* where the handle counter and the frozen flag persist */
        int64_t next_handle;       /* guest-file-open handles: never reused while the guest runs */
        struct FileHandle *files;  /* open guest-file-* handles */
        size_t n_files;
        struct ExecChild *children;
        size_t n_children;
};

/* State kept across restarts of the agent (it is respawned by init). */
void agent_state_load(Agent *agent);
int agent_state_save(Agent *agent);

/* Frees the guest-file handles and the exec children's state (at exit). */
void file_handles_free(Agent *agent);
void exec_children_free(Agent *agent);

/* guest-exec: fds to poll for child output, and what to do when they are readable. */
size_t exec_poll_fds(Agent *agent, struct pollfd *fds, size_t max);
void exec_poll_process(Agent *agent, const struct pollfd *fds, size_t n);

_printf_(1, 2) void log_info(const char *format, ...);

/* Whether s is valid UTF-8 (JSON text must be). */
bool utf8_valid(const char *s);

