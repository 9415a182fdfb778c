/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Test harness for the client library: a private dbus-daemon (never the
 * user's session bus) and orrery-fake-vm instances on it. Everything it
 * starts dies with the test: killed at exit, by the watchdog, or by the
 * kernel (PR_SET_PDEATHSIG) if the test crashes.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Starts the private bus; returns its address (static storage) or NULL. */
const char *test_bus_start(void);
/* Kills the bus and every fake still running; removes the temporary directory. */
void test_bus_stop(void);

/* Bails out (TAP "Bail out!") and cleans up if the test runs longer than this. */
void test_watchdog(unsigned seconds);

/* Starts orrery-fake-vm --name=name [args...] on the private bus and waits
 * until it owns its name. extra_args is NULL-terminated (or NULL). */
pid_t test_fake_vm_start(const char *name, const char *const *extra_args);
/* The same, run as uid (and gid uid) through setpriv(1): needs root. */
pid_t test_fake_vm_start_as(const char *name, uid_t uid, const char *const *extra_args);
/* SIGKILL and reap. */
void test_fake_vm_kill(pid_t pid);
/* SIGTERM and reap; returns the exit status (or -1). */
int test_fake_vm_stop(pid_t pid);
/* Reaps a fake that is expected to exit by itself; false if it did not within timeout_ms. */
bool test_fake_vm_wait(pid_t pid, unsigned timeout_ms);

uint64_t test_now_usec(void);
/* Number of open file descriptors of this process. */
unsigned test_count_fds(void);
