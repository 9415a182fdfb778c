/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * orrery-agent's objects: the Manager follows the VMs on the bus and owns
 * one Agent per VM that has a "guest_agent" chardev (or per test socket);
 * each Agent is /org/orrery/Agent/<vm> with org.orrery.Agent1 and owns a
 * QgaChannel to its guest and the copies running on it.
 *
 * Everything runs on one sd-event loop; nothing blocks on a guest or a
 * caller (sockets, pipes and the chardev are non-blocking, every guest call
 * has a timeout), so one VM never holds up another.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "orrery-client.h"
#include "qga-channel.h"

#define AGENT_BUS_NAME "org.orrery.Agent"
#define AGENT_PATH_PREFIX "/org/orrery/Agent"
#define AGENT_INTERFACE "org.orrery.Agent1"
#define AGENT_CHARDEV_ID "guest_agent"

typedef struct Agent Agent;
typedef struct Copy Copy;

typedef struct TestSocket {
        char *vm;
        char *socket;
} TestSocket;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        OrreryClient *client;
        OrreryVmWatch *watch;
        uint64_t timeout_usec;
        uint64_t copy_max_bytes;       /* CopyFromGuest's bound (--copy-max-bytes) */
        unsigned copy_reserve_percent; /* of the destination's file system, kept free (--copy-reserve) */
        Agent *agents;
        /* The test hook: these VMs' agents talk to a Unix socket, not a chardev. */
        TestSocket tests[16];
        size_t n_tests;
        bool name_requested;
        sd_event_source *startup_timer;
        uint64_t startup_begin;
} Manager;

struct Agent {
        Manager *manager;
        Agent *next;
        char *name;
        char *path;
        char *label;       /* "VM 'name'", for messages */
        OrreryVm *vm;      /* NULL for a test socket */
        char *socket_path; /* the test hook */
        QgaChannel *channel;
        sd_bus_slot *slot; /* the exported vtable, while published */
        bool registering;
        bool busy;         /* another client owns the chardev */
        bool settled;      /* the first attempt to reach the port is over (startup) */
        sd_event_source *retry;
        Copy *copies;
};

int manager_check_caller(sd_bus_message *m, sd_bus_error *error);
void manager_agent_settled(Manager *m);

int agent_new(Manager *m, const char *name, const char *socket_path, Agent **ret);
Agent *agent_free(Agent *a);
Agent *agent_find(Manager *m, const char *name);

/* The VTable of org.orrery.Agent1 (agent.c) and its copy methods (copy.c). */
extern const sd_bus_vtable agent_vtable[];
int method_copy_to_guest(sd_bus_message *m, void *userdata, sd_bus_error *error);
int method_copy_from_guest(sd_bus_message *m, void *userdata, sd_bus_error *error);
int method_copy_from_guest_ex(sd_bus_message *m, void *userdata, sd_bus_error *error);
int method_cancel_copies(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Fails every copy of the agent with error (they were using its channel). */
void copies_abort_all(Agent *a, const sd_bus_error *error);

/* Replies an error for a request that could not even be queued. */
int agent_reply_not_available(Agent *a, sd_bus_message *m, int r, sd_bus_error *error);
/* While the VM migrates, new calls are answered Busy (the guest agent moves with it); 0 otherwise. */
int agent_refuse_while_migrating(Agent *a, sd_bus_error *error);
