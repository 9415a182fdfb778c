/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * VM names, and how a name maps to the VM's bus name and object path: the
 * one place the emulator and the client library both ask.
 *
 * A name is what a systemd instance name can be, within what D-Bus allows
 * in one element of a bus name: 1-64 characters of A-Z, a-z, 0-9, '_' and
 * '-', starting with a letter or '_' ("my-vm", "build_2", "VM").
 *
 *   bus name:    org.orrery.VM.NAME, unchanged ('-' is valid in bus names)
 *   object path: /org/orrery/VM/ + sd_bus_path_encode(NAME): every byte
 *                but A-Z, a-z, 0-9 becomes _XX (two lower-case hex
 *                digits), so "my-vm" is /org/orrery/VM/my_2dvm and
 *                "my_vm" is /org/orrery/VM/my_5fvm; plain names such as
 *                "demo" are unchanged.
 */

#include <stdbool.h>

#define VM_NAME_MAX 64
/* For error messages: what vm_name_check() accepts. */
#define VM_NAME_RULE "1-64 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or '_'"

bool vm_name_check(const char *name);

/*
 * Validates 'name' and returns its bus name and/or object path (either
 * ret may be NULL; the caller frees). -EINVAL for an invalid name.
 */
int vm_name_to_bus(const char *name, char **ret_bus_name, char **ret_path);
