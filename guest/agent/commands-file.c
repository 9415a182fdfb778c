/* SPDX-License-Identifier: MIT */
/*
 * guest-file-open, -read, -write, -seek, -flush and -close, as in QGA:
 * integer handles (never reused while the guest runs, also across restarts
 * of the agent), data in base64, the same modes, count limits and error
 * texts. Files are opened non-blocking, as QGA does, so that a FIFO
 * without a writer cannot hang the agent: a read then returns what there is.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "base64.h"

/* QGA's limit on one guest-file-read. */
#define READ_COUNT_MAX (48U << 20)
#define READ_COUNT_DEFAULT 4096
/* Open handles at once: each is an fd of the agent. */
#define FILES_MAX 128U

struct FileHandle {
        int64_t id;
        int fd;
};

static struct FileHandle *file_find(Agent *agent, int64_t id) {
        for (size_t i = 0; i < agent->n_files; i++)
                if (agent->files[i].id == id)
                        return &agent->files[i];
        return NULL;
}

static struct FileHandle *file_get(Agent *agent, json_object *args, Reply *reply) {
        int64_t id = arg_int(args, "handle", -1);
        struct FileHandle *f = file_find(agent, id);

        if (!f)
                reply_error(reply, "handle '%" PRId64 "' has not been found", id);
        return f;
}

void file_handles_free(Agent *agent) {
        for (size_t i = 0; i < agent->n_files; i++)
                safe_close(agent->files[i].fd);
        free(agent->files);
        agent->files = NULL;
        agent->n_files = 0;
}

static int open_flags(const char *mode) {
        static const struct {
                const char *modes[3];
                int flags;
        } table[] = {
                { { "r", "rb" }, O_RDONLY },
                { { "w", "wb" }, O_WRONLY | O_CREAT | O_TRUNC },
                { { "a", "ab" }, O_WRONLY | O_CREAT | O_APPEND },
                { { "r+", "rb+", "r+b" }, O_RDWR },
                { { "w+", "wb+", "w+b" }, O_RDWR | O_CREAT | O_TRUNC },
                { { "a+", "ab+", "a+b" }, O_RDWR | O_CREAT | O_APPEND },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                for (size_t j = 0; j < ELEMENTSOF(table[i].modes) && table[i].modes[j]; j++)
                        if (streq(mode, table[i].modes[j]))
                                return table[i].flags;
        return -EINVAL;
}

static int cmd_open(Agent *agent, json_object *args, Reply *reply) {
        const char *path = arg_string(args, "path", "");
        const char *mode = arg_string(args, "mode", "r");
        struct FileHandle *files;
        int flags, fd;

        flags = open_flags(mode);
        if (flags < 0)
                return reply_error(reply, "invalid file open mode '%s'", mode);
        if (strlen(path) != arg_string_len(args, "path"))
                return reply_error(reply, "failed to open file: the path contains a NUL character");
        if (agent->n_files >= FILES_MAX)
                return reply_error(reply, "failed to open file '%s' (mode: '%s'): %u handles are open already",
                                   path, mode, FILES_MAX);

        files = realloc(agent->files, (agent->n_files + 1) * sizeof(*files));
        if (!files)
                return reply_error_errno(reply, ENOMEM, "failed to open file '%s' (mode: '%s')", path, mode);
        agent->files = files;

        fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0666);
        if (fd < 0)
                return reply_error_errno(reply, errno, "failed to open file '%s' (mode: '%s')", path, mode);

        agent->files[agent->n_files++] = (struct FileHandle) { .id = agent->next_handle++, .fd = fd };
        (void) agent_state_save(agent);
        reply_return(reply, json_object_new_int64(agent->files[agent->n_files - 1].id));
        return 0;
}

static int cmd_close(Agent *agent, json_object *args, Reply *reply) {
        struct FileHandle *f = file_get(agent, args, reply);
        int fd, r;

        if (!f)
                return -1;
        fd = f->fd;
        *f = agent->files[--agent->n_files];
        r = close(fd);
        if (r < 0 && errno != EINTR)
                return reply_error_errno(reply, errno, "failed to close handle");
        return 0;
}

static json_object *count_eof(size_t count, bool eof) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "count", json_object_new_int64((int64_t) count));
        json_object_object_add(o, "eof", json_object_new_boolean(eof));
        return o;
}

static int cmd_read(Agent *agent, json_object *args, Reply *reply) {
        struct FileHandle *f = file_get(agent, args, reply);
        int64_t count = arg_int(args, "count", READ_COUNT_DEFAULT);
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *b64 = NULL;
        size_t got = 0, len;
        bool eof = false;
        json_object *result;

        if (!f)
                return -1;
        if (count < 0 || count > READ_COUNT_MAX)
                return reply_error(reply, "value '%" PRId64 "' is invalid for argument count", count);

        buf = malloc((size_t) count + 1);
        if (!buf)
                return reply_error_errno(reply, ENOMEM, "failed to read file");
        while (got < (size_t) count) {
                ssize_t k = read(f->fd, buf + got, (size_t) count - got);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return reply_error_errno(reply, errno, "failed to read file");
                }
                if (k == 0) {
                        eof = true;
                        break;
                }
                got += (size_t) k;
        }

        b64 = base64_encode_new(buf, got, &len);
        if (!b64)
                return reply_error_errno(reply, ENOMEM, "failed to read file");
        result = count_eof(got, eof);
        json_object_object_add(result, "buf-b64", json_object_new_string_len(b64, (int) len));
        reply_return(reply, result);
        return 0;
}

static int cmd_write(Agent *agent, json_object *args, Reply *reply) {
        struct FileHandle *f = file_get(agent, args, reply);
        _cleanup_free_ uint8_t *data = NULL;
        size_t size, done = 0;
        int64_t count;
        long n;

        if (!f)
                return -1;
        n = base64_decode_new(arg_string(args, "buf-b64", ""), arg_string_len(args, "buf-b64"), &data, BASE64_LENIENT);
        if (n == -EBADMSG)
                return reply_error(reply, "Base64 data contains invalid characters");
        if (n < 0)
                return reply_error_errno(reply, (int) n, "failed to decode the base64 data");
        size = (size_t) n;

        count = arg_int(args, "count", (int64_t) size);
        if (count < 0 || (uint64_t) count > size)
                return reply_error(reply, "value '%" PRId64 "' is invalid for argument count", count);

        while (done < (size_t) count) {
                ssize_t k = write(f->fd, data + done, (size_t) count - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return reply_error_errno(reply, errno, "failed to write to file");
                }
                done += (size_t) k;
        }

        reply_return(reply, count_eof(done, false));
        return 0;
}

static int cmd_seek(Agent *agent, json_object *args, Reply *reply) {
        struct FileHandle *f = file_get(agent, args, reply);
        int64_t offset = arg_int(args, "offset", 0);
        json_object *whence_arg, *result;
        int whence;
        off_t pos;

        if (!f)
                return -1;
        (void) json_object_object_get_ex(args, "whence", &whence_arg);
        if (json_object_is_type(whence_arg, json_type_string)) {
                const char *w = json_object_get_string(whence_arg);

                if (streq(w, "set"))
                        whence = SEEK_SET;
                else if (streq(w, "cur"))
                        whence = SEEK_CUR;
                else if (streq(w, "end"))
                        whence = SEEK_END;
                else
                        return reply_error(reply, "Parameter 'whence' does not accept value '%s'", w);
        } else {
                int64_t code = json_object_get_int64(whence_arg);

                /* QGA's numeric codes are its own, not the host's SEEK_* values. */
                if (code == 0)
                        whence = SEEK_SET;
                else if (code == 1)
                        whence = SEEK_CUR;
                else if (code == 2)
                        whence = SEEK_END;
                else
                        return reply_error(reply, "invalid whence code %" PRId64, code);
        }

        pos = lseek(f->fd, (off_t) offset, whence);
        if (pos < 0)
                return reply_error_errno(reply, errno, "failed to seek file");

        result = json_object_new_object();
        json_object_object_add(result, "position", json_object_new_int64((int64_t) pos));
        json_object_object_add(result, "eof", json_object_new_boolean(false));
        reply_return(reply, result);
        return 0;
}

/* Writes go straight to the file (nothing is buffered in the agent); flush makes them durable. */
static int cmd_flush(Agent *agent, json_object *args, Reply *reply) {
        struct FileHandle *f = file_get(agent, args, reply);

        if (!f)
                return -1;
        if (fdatasync(f->fd) < 0 && errno != EINVAL && errno != EROFS)
                return reply_error_errno(reply, errno, "failed to flush file");
        return 0;
}

static const Param open_params[] = {
        { .name = "path", .type = PARAM_STRING },
        { .name = "mode", .type = PARAM_STRING, .optional = true },
        {},
};

static const Param handle_params[] = {
        { .name = "handle", .type = PARAM_INT },
        {},
};

static const Param read_params[] = {
        { .name = "handle", .type = PARAM_INT },
        { .name = "count", .type = PARAM_INT, .optional = true },
        {},
};

static const Param write_params[] = {
        { .name = "handle", .type = PARAM_INT },
        { .name = "buf-b64", .type = PARAM_STRING },
        { .name = "count", .type = PARAM_INT, .optional = true },
        {},
};

static const Param seek_params[] = {
        { .name = "handle", .type = PARAM_INT },
        { .name = "offset", .type = PARAM_INT },
        { .name = "whence", .type = PARAM_INT_OR_STRING },
        {},
};

static const Command commands[] = {
        { "guest-file-open", cmd_open, open_params, 0 },
        { "guest-file-close", cmd_close, handle_params, 0 },
        { "guest-file-read", cmd_read, read_params, 0 },
        { "guest-file-write", cmd_write, write_params, 0 },
        { "guest-file-seek", cmd_seek, seek_params, 0 },
        { "guest-file-flush", cmd_flush, handle_params, 0 },
};

const Command *file_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(commands);
        return commands;
}
