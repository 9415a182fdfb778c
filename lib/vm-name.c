/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "orrery-contract.h"
#include "macro.h"
#include "vm-name.h"

static bool is_letter(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool vm_name_check(const char *name) {
        size_t n;

        if (!name || !is_letter(name[0]))
                return false;
        for (n = 1; name[n]; n++)
                if (n >= VM_NAME_MAX || !(is_letter(name[n]) || (name[n] >= '0' && name[n] <= '9') || name[n] == '-'))
                        return false;
        return true;
}

int vm_name_to_bus(const char *name, char **ret_bus_name, char **ret_path) {
        _cleanup_free_ char *bus_name = NULL, *path = NULL;
        int r;

        if (!vm_name_check(name))
                return -EINVAL;
        if (ret_bus_name) {
                bus_name = malloc(strlen(ORRERY_VM_BUS_NAME_PREFIX) + strlen(name) + 1);
                if (!bus_name)
                        return -ENOMEM;
                strcpy(stpcpy(bus_name, ORRERY_VM_BUS_NAME_PREFIX), name);
        }
        if (ret_path) {
                r = sd_bus_path_encode("/org/orrery/VM", name, &path);
                if (r < 0)
                        return r;
        }
        if (ret_bus_name)
                *ret_bus_name = TAKE_PTR(bus_name);
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}
