/* SPDX-License-Identifier: MIT */
/*
 * --net's default MAC: the same VM (name) and NIC (id) get the same address
 * on every start, other VMs and other NICs other addresses, all locally
 * administered unicast; mac= wins.
 */

#include <string.h>

#include "macro.h"
#include "tap.h"
#include "net/netspec.h"

/* The MAC orrery-vm would give NIC 'spec' (a --net value) of VM 'vm_name' as its 'index'-th NIC. */
static void mac_of(const char *vm_name, const char *const *specs, size_t n, size_t index, uint8_t ret[6]) {
        NetSpec s[4] = {};

        for (size_t i = 0; i < n; i++)
                if (net_spec_parse(specs[i], NULL, &s[i]) < 0)
                        memset(&s[i], 0, sizeof(s[i]));
        if (net_specs_finish(s, n, vm_name) == 0)
                memcpy(ret, s[index].mac, 6);
        else
                memset(ret, 0, 6);
        for (size_t i = 0; i < n; i++)
                net_spec_done(&s[i]);
}

int main(void) {
        const char *one[] = { "user" };
        const char *two[] = { "user", "user,id=lan" };
        const char *given[] = { "user,mac=52:54:00:aa:bb:cc" };
        uint8_t a[6], b[6], c[6], d[6];

        mac_of("web", one, 1, 0, a);
        mac_of("web", one, 1, 0, b);
        CHECK(memcmp(a, b, 6) == 0, "the same VM and NIC: the same MAC on every start");
        CHECK(a[0] & 0x02, "locally administered");
        CHECK(!(a[0] & 0x01), "unicast");
        CHECK(a[0] != 0 || a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 || a[5] != 0, "a MAC was made");

        mac_of("db", one, 1, 0, c);
        CHECK(memcmp(a, c, 6) != 0, "another VM name: another MAC");

        mac_of("web", two, 2, 1, d);
        CHECK(memcmp(a, d, 6) != 0, "another NIC of the same VM: another MAC");
        mac_of("web", two, 2, 0, b);
        CHECK(memcmp(a, b, 6) == 0, "adding a second NIC keeps the first one's MAC");

        mac_of("web", given, 1, 0, b);
        CHECK(memcmp(b, (uint8_t[]) { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc }, 6) == 0, "mac= is kept");
        return tap_finish();
}
