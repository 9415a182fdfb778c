/* SPDX-License-Identifier: MIT */
/*
 * guest-exec and guest-exec-status, as in QGA: guest-exec starts a program
 * (searched in PATH; "arg" and "env" as given, "env" replacing the whole
 * environment), feeds it "input-data" on stdin and, with "capture-output",
 * collects its stdout and stderr (up to 16 MiB each, then "truncated").
 * guest-exec-status reports "exited": false until the program has ended
 * and both of its output pipes are closed; the report that says it exited
 * is the last one, and the pid is forgotten after it.
 *
 * The pipes are served by the agent's poll loop (exec_poll_fds and
 * exec_poll_process), so a program that writes a lot never blocks, and
 * the agent answers other requests meanwhile.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "base64.h"

#define OUTPUT_MAX (16U << 20)

typedef struct Output {
        int fd;           /* -1 once at end of file (or never captured) */
        uint8_t *data;
        size_t size, allocated;
        bool truncated;
} Output;

struct ExecChild {
        pid_t pid;
        bool exited;      /* reaped; status is valid */
        int status;
        bool captured;
        int in_fd;        /* -1 once all input is written (or there was none) */
        uint8_t *input;
        size_t input_size, input_done;
        Output out, err;
};

static void output_free(Output *o) {
        o->fd = safe_close(o->fd);
        free(o->data);
        o->data = NULL;
}

static void child_free(struct ExecChild *c) {
        c->in_fd = safe_close(c->in_fd);
        free(c->input);
        output_free(&c->out);
        output_free(&c->err);
}

void exec_children_free(Agent *agent) {
        for (size_t i = 0; i < agent->n_children; i++)
                child_free(&agent->children[i]);
        free(agent->children);
        agent->children = NULL;
        agent->n_children = 0;
}

static void child_reap(struct ExecChild *c) {
        if (!c->exited && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
                c->exited = true;
}

/* ------------------------------------------------------------- polling */

size_t exec_poll_fds(Agent *agent, struct pollfd *fds, size_t max) {
        size_t n = 0;

        for (size_t i = 0; i < agent->n_children && n + 3 <= max; i++) {
                struct ExecChild *c = &agent->children[i];

                if (c->in_fd >= 0)
                        fds[n++] = (struct pollfd) { .fd = c->in_fd, .events = POLLOUT };
                if (c->out.fd >= 0)
                        fds[n++] = (struct pollfd) { .fd = c->out.fd, .events = POLLIN };
                if (c->err.fd >= 0)
                        fds[n++] = (struct pollfd) { .fd = c->err.fd, .events = POLLIN };
        }
        return n;
}

static void output_read(Output *o) {
        uint8_t scratch[4096];

        for (;;) {
                size_t room;
                uint8_t *dst;
                ssize_t k;

                if (!o->truncated && o->allocated - o->size < sizeof(scratch) && o->allocated < OUTPUT_MAX) {
                        size_t want = MIN(MAX(o->allocated * 2, (size_t) 65536), (size_t) OUTPUT_MAX);
                        uint8_t *p = realloc(o->data, want);

                        if (p) {
                                o->data = p;
                                o->allocated = want;
                        }
                }
                room = o->allocated - o->size;
                /* Past the limit (or out of memory) the output is read and dropped. */
                dst = room > 0 && !o->truncated ? o->data + o->size : scratch;
                k = read(o->fd, dst, dst == scratch ? sizeof(scratch) : room);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        o->fd = safe_close(o->fd);
                        return;
                }
                if (k == 0) {
                        o->fd = safe_close(o->fd);
                        return;
                }
                if (dst == scratch)
                        o->truncated = true;
                else
                        o->size += (size_t) k;
        }
}

static void input_write(struct ExecChild *c) {
        while (c->input_done < c->input_size) {
                ssize_t k = write(c->in_fd, c->input + c->input_done, c->input_size - c->input_done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        break; /* EPIPE: the program does not read its input */
                }
                c->input_done += (size_t) k;
        }
        c->in_fd = safe_close(c->in_fd);
        free(c->input);
        c->input = NULL;
}

void exec_poll_process(Agent *agent, const struct pollfd *fds, size_t n) {
        for (size_t f = 0; f < n; f++) {
                if (!fds[f].revents)
                        continue;
                for (size_t i = 0; i < agent->n_children; i++) {
                        struct ExecChild *c = &agent->children[i];

                        if (fds[f].fd == c->in_fd)
                                input_write(c);
                        else if (fds[f].fd == c->out.fd)
                                output_read(&c->out);
                        else if (fds[f].fd == c->err.fd)
                                output_read(&c->err);
                        else
                                continue;
                        break;
                }
        }
}

/* ------------------------------------------------------------ commands */

static char **string_array(json_object *array, const char *first) {
        size_t n = array ? json_object_array_length(array) : 0, k = 0;
        char **v = calloc(n + 2, sizeof(char *));

        if (!v)
                return NULL;
        if (first)
                v[k++] = (char *) first;
        for (size_t i = 0; i < n; i++)
                v[k++] = (char *) json_object_get_string(json_object_array_get_idx(array, i));
        return v;
}

static int pipe_cloexec(int p[2]) {
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        return 0;
}

static void close_pair(int p[2]) {
        p[0] = safe_close(p[0]);
        p[1] = safe_close(p[1]);
}

static int cmd_exec(Agent *agent, json_object *args, Reply *reply) {
        const char *path = arg_string(args, "path", "");
        bool capture = arg_bool(args, "capture-output", false);
        json_object *arg_list = NULL, *env_list = NULL, *result;
        _cleanup_free_ char **argv = NULL, **envp = NULL;
        _cleanup_free_ uint8_t *input = NULL;
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, status_pipe[2] = { -1, -1 };
        struct ExecChild *children, *c;
        size_t input_size = 0;
        int r, child_errno;
        ssize_t k;
        pid_t pid;

        if (strlen(path) != arg_string_len(args, "path"))
                return reply_error(reply, "failed to execute child process: the path contains a NUL character");
        if (agent->n_children >= AGENT_EXEC_MAX)
                return reply_error(reply, "failed to execute child process '%s': %u are running already", path,
                                   AGENT_EXEC_MAX);
        if (arg_has(args, "input-data")) {
                long n = base64_decode_new(arg_string(args, "input-data", ""), arg_string_len(args, "input-data"),
                                           &input, BASE64_LENIENT);

                if (n == -EBADMSG)
                        return reply_error(reply, "Base64 data contains invalid characters");
                if (n < 0)
                        return reply_error_errno(reply, (int) n, "failed to decode input-data");
                input_size = (size_t) n;
        }

        (void) json_object_object_get_ex(args, "arg", &arg_list);
        (void) json_object_object_get_ex(args, "env", &env_list);
        argv = string_array(arg_list, path);
        envp = env_list ? string_array(env_list, NULL) : NULL;
        if (!argv || (env_list && !envp))
                return reply_error_errno(reply, ENOMEM, "failed to execute child process '%s'", path);

        children = realloc(agent->children, (agent->n_children + 1) * sizeof(*children));
        if (!children)
                return reply_error_errno(reply, ENOMEM, "failed to execute child process '%s'", path);
        agent->children = children;

        if ((input && pipe_cloexec(in) < 0) || (capture && (pipe_cloexec(out) < 0 || pipe_cloexec(err) < 0)) ||
            pipe_cloexec(status_pipe) < 0) {
                r = -errno;
                goto fail;
        }

        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto fail;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                int e;

                (void) setsid();
                signal(SIGPIPE, SIG_DFL);
                if (dup2(in[0] >= 0 ? in[0] : null, STDIN_FILENO) < 0 ||
                    dup2(out[1] >= 0 ? out[1] : null, STDOUT_FILENO) < 0 ||
                    dup2(err[1] >= 0 ? err[1] : null, STDERR_FILENO) < 0)
                        e = errno;
                else {
                        if (envp)
                                execvpe(path, argv, envp);
                        else
                                execvp(path, argv);
                        e = errno;
                }
                (void) !write(status_pipe[1], &e, sizeof(e));
                _exit(127);
        }

        /* The status pipe closes on a successful exec; otherwise it carries the child's errno. */
        status_pipe[1] = safe_close(status_pipe[1]);
        do
                k = read(status_pipe[0], &child_errno, sizeof(child_errno));
        while (k < 0 && errno == EINTR);
        status_pipe[0] = safe_close(status_pipe[0]);
        if (k == sizeof(child_errno)) {
                (void) waitpid(pid, NULL, 0);
                r = -child_errno;
                goto fail;
        }

        in[0] = safe_close(in[0]);
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        for (size_t i = 0; i < 3; i++) {
                int fd = (int[]) { in[1], out[0], err[0] }[i];

                if (fd >= 0)
                        (void) fcntl(fd, F_SETFL, O_NONBLOCK);
        }

        c = &agent->children[agent->n_children++];
        *c = (struct ExecChild) {
                .pid = pid,
                .captured = capture,
                .in_fd = in[1],
                .input = TAKE_PTR(input),
                .input_size = input_size,
                .out = { .fd = out[0] },
                .err = { .fd = err[0] },
        };
        if (c->in_fd >= 0)
                input_write(c);

        result = json_object_new_object();
        json_object_object_add(result, "pid", json_object_new_int64(pid));
        reply_return(reply, result);
        return 0;

fail:
        close_pair(in);
        close_pair(out);
        close_pair(err);
        close_pair(status_pipe);
        return reply_error_errno(reply, r, "failed to execute child process '%s'", path);
}

static void add_output(json_object *result, const char *data_key, const char *truncated_key, const Output *o) {
        _cleanup_free_ char *b64 = NULL;
        size_t len;

        if (o->size == 0)
                return;
        b64 = base64_encode_new(o->data, o->size, &len);
        if (!b64)
                return;
        json_object_object_add(result, data_key, json_object_new_string_len(b64, (int) len));
        json_object_object_add(result, truncated_key, json_object_new_boolean(o->truncated));
}

static int cmd_exec_status(Agent *agent, json_object *args, Reply *reply) {
        int64_t pid = arg_int(args, "pid", 0);
        struct ExecChild *c = NULL;
        json_object *result;
        bool finished;

        for (size_t i = 0; i < agent->n_children && !c; i++)
                if (agent->children[i].pid == pid)
                        c = &agent->children[i];
        if (!c)
                return reply_error(reply, "Invalid parameter 'pid'");

        child_reap(c);
        /* Everything the program wrote must be in before "exited" is said. */
        if (c->exited && c->out.fd >= 0)
                output_read(&c->out);
        if (c->exited && c->err.fd >= 0)
                output_read(&c->err);
        finished = c->exited && c->out.fd < 0 && c->err.fd < 0;

        result = json_object_new_object();
        json_object_object_add(result, "exited", json_object_new_boolean(finished));
        if (finished) {
                if (WIFEXITED(c->status))
                        json_object_object_add(result, "exitcode", json_object_new_int(WEXITSTATUS(c->status)));
                else if (WIFSIGNALED(c->status))
                        json_object_object_add(result, "signal", json_object_new_int(WTERMSIG(c->status)));
                add_output(result, "out-data", "out-truncated", &c->out);
                add_output(result, "err-data", "err-truncated", &c->err);
                child_free(c);
                *c = agent->children[--agent->n_children];
        }
        reply_return(reply, result);
        return 0;
}

static const Param exec_params[] = {
        { .name = "path", .type = PARAM_STRING },
        { .name = "arg", .type = PARAM_STRING_ARRAY, .optional = true },
        { .name = "env", .type = PARAM_STRING_ARRAY, .optional = true },
        { .name = "input-data", .type = PARAM_STRING, .optional = true },
        { .name = "capture-output", .type = PARAM_BOOL, .optional = true },
        {},
};

static const Param exec_status_params[] = {
        { .name = "pid", .type = PARAM_INT },
        {},
};

static const Command commands[] = {
        { "guest-exec", cmd_exec, exec_params, COMMAND_SYSTEM },
        { "guest-exec-status", cmd_exec_status, exec_status_params, COMMAND_SYSTEM },
};

const Command *exec_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(commands);
        return commands;
}
