/* SPDX-License-Identifier: MIT */
/* guest-exec and guest-exec-status. */

#include "agent.h"

struct ExecChild {
        int pid;
};

void exec_children_free(Agent *agent) {
}

size_t exec_poll_fds(Agent *agent, struct pollfd *fds, size_t max) {
        return 0;
}

void exec_poll_process(Agent *agent, const struct pollfd *fds, size_t n) {
}

const Command *exec_commands(size_t *ret_n) {
        *ret_n = 0;
        return NULL;
}
