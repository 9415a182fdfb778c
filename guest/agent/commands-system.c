/* SPDX-License-Identifier: MIT */
/*
 * The commands about the agent and the system: guest-sync,
 * guest-sync-delimited, guest-ping, guest-info, guest-get-osinfo,
 * guest-get-host-name, guest-get-time and guest-shutdown.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static int cmd_sync(Agent *agent, json_object *args, Reply *reply) {
        reply_return(reply, json_object_new_int64(arg_int(args, "id", 0)));
        return 0;
}

static int cmd_sync_delimited(Agent *agent, json_object *args, Reply *reply) {
        reply->delimited = true;
        return cmd_sync(agent, args, reply);
}

static int cmd_ping(Agent *agent, json_object *args, Reply *reply) {
        return 0;
}

typedef struct InfoList {
        Agent *agent;
        json_object *list;
} InfoList;

static void add_command_info(const Command *command, void *userdata) {
        InfoList *info = userdata;
        json_object *entry = json_object_new_object();

        json_object_object_add(entry, "enabled", json_object_new_boolean(command_enabled(info->agent, command)));
        json_object_object_add(entry, "name", json_object_new_string(command->name));
        json_object_object_add(entry, "success-response",
                               json_object_new_boolean(!(command->flags & COMMAND_NO_SUCCESS_RESPONSE)));
        json_object_array_add(info->list, entry);
}

static int cmd_info(Agent *agent, json_object *args, Reply *reply) {
        InfoList list = { agent, json_object_new_array() };
        json_object *info = json_object_new_object();

        commands_foreach(add_command_info, &list);
        json_object_object_add(info, "version", json_object_new_string(AGENT_VERSION));
        json_object_object_add(info, "supported_commands", list.list);
        reply_return(reply, info);
        return 0;
}

/* An os-release value: unquoted, or in single or double quotes (with backslash escapes in double quotes). */
static char *os_release_value(const char *raw) {
        size_t n = strlen(raw);
        char *out, *o;

        while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == ' ' || raw[n - 1] == '\t'))
                n--;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        if (n >= 2 && (raw[0] == '"' || raw[0] == '\'') && raw[n - 1] == raw[0]) {
                bool dq = raw[0] == '"';

                o = out;
                for (size_t i = 1; i < n - 1; i++) {
                        if (dq && raw[i] == '\\' && i + 1 < n - 1)
                                i++;
                        *o++ = raw[i];
                }
                *o = 0;
        } else {
                memcpy(out, raw, n);
                out[n] = 0;
        }
        return out;
}

static void add_os_release(json_object *info) {
        static const struct {
                const char *key, *name;
        } keys[] = {
                { "ID", "id" },
                { "NAME", "name" },
                { "PRETTY_NAME", "pretty-name" },
                { "VERSION", "version" },
                { "VERSION_ID", "version-id" },
                { "VARIANT", "variant" },
                { "VARIANT_ID", "variant-id" },
        };
        _cleanup_fclose_ FILE *f = fopen("/etc/os-release", "re");
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        if (!f)
                f = fopen("/usr/lib/os-release", "re");
        if (!f)
                return;

        while (getline(&line, &size, f) > 0) {
                char *eq = strchr(line, '=');

                if (!eq || line[0] == '#')
                        continue;
                *eq = 0;
                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        _cleanup_free_ char *value = NULL;

                        if (!streq(line, keys[i].key))
                                continue;
                        value = os_release_value(eq + 1);
                        /* Only UTF-8 can go into JSON; a value that is not is left out. */
                        if (value && utf8_valid(value) && !json_object_object_get_ex(info, keys[i].name, NULL))
                                json_object_object_add(info, keys[i].name, json_object_new_string(value));
                }
        }
}

static int cmd_get_osinfo(Agent *agent, json_object *args, Reply *reply) {
        json_object *info;
        struct utsname u;

        if (uname(&u) < 0)
                return reply_error_errno(reply, errno, "uname failed");

        info = json_object_new_object();
        json_object_object_add(info, "kernel-release", json_object_new_string(u.release));
        json_object_object_add(info, "kernel-version", json_object_new_string(u.version));
        json_object_object_add(info, "machine", json_object_new_string(u.machine));
        add_os_release(info);
        reply_return(reply, info);
        return 0;
}

static int cmd_get_host_name(Agent *agent, json_object *args, Reply *reply) {
        char name[HOST_NAME_MAX + 1] = {};
        json_object *result;

        if (gethostname(name, sizeof(name) - 1) < 0)
                return reply_error_errno(reply, errno, "failed to get the host name");

        result = json_object_new_object();
        json_object_object_add(result, "host-name", json_object_new_string(name));
        reply_return(reply, result);
        return 0;
}

static int cmd_get_time(Agent *agent, json_object *args, Reply *reply) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return reply_error_errno(reply, errno, "failed to get the time");
        reply_return(reply, json_object_new_int64((int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec));
        return 0;
}

/* Runs busybox's poweroff/reboot/halt, which ask init to stop everything and then the kernel to act. */
static int cmd_shutdown(Agent *agent, json_object *args, Reply *reply) {
        const char *mode = arg_string(args, "mode", "powerdown");
        const char *program;
        int status;
        pid_t pid;

        if (streq(mode, "powerdown"))
                program = "/sbin/poweroff";
        else if (streq(mode, "reboot"))
                program = "/sbin/reboot";
        else if (streq(mode, "halt"))
                program = "/sbin/halt";
        else
                return reply_error(reply, "mode is invalid (valid values are: halt|powerdown|reboot)");

        pid = fork();
        if (pid < 0)
                return reply_error_errno(reply, errno, "failed to create a child process");
        if (pid == 0) {
                execl(program, program, (char *) NULL);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return reply_error_errno(reply, errno, "failed to wait for %s", program);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return reply_error(reply, "child process has failed to shutdown (%s)", program);

        log_info("%s requested by the host", mode);
        reply->no_response = true;
        return 0;
}

static const Param sync_params[] = {
        { .name = "id", .type = PARAM_INT },
        {},
};

static const Param shutdown_params[] = {
        { .name = "mode", .type = PARAM_STRING, .optional = true },
        {},
};

static const Command commands[] = {
        { "guest-sync-delimited", cmd_sync_delimited, sync_params, COMMAND_ALLOWED_FROZEN },
        { "guest-sync", cmd_sync, sync_params, COMMAND_ALLOWED_FROZEN },
        { "guest-ping", cmd_ping, NULL, COMMAND_ALLOWED_FROZEN },
        { "guest-info", cmd_info, NULL, COMMAND_ALLOWED_FROZEN },
        { "guest-get-osinfo", cmd_get_osinfo, NULL, 0 },
        { "guest-get-host-name", cmd_get_host_name, NULL, 0 },
        { "guest-get-time", cmd_get_time, NULL, 0 },
        { "guest-shutdown", cmd_shutdown, shutdown_params, COMMAND_NO_SUCCESS_RESPONSE | COMMAND_SYSTEM },
};

const Command *system_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(commands);
        return commands;
}
