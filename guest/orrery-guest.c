/* SPDX-License-Identifier: MIT */
/*
 * orrery-guest: the default guest's two helpers in one static binary, so
 * that glibc's static runtime (about 240 KiB compressed) is in the
 * initramfs once; twice, it would add about 0.2 s to every boot, spent by
 * the kernel unpacking it. Installed as /usr/bin/orrery-guest with the
 * links /usr/bin/orrery-guest-probe and /usr/sbin/orrery-guest-agent: run
 * as orrery-guest-agent it is the guest agent (agent/), under any other
 * name the test helper (probe/).
 */

#include <string.h>

#include "orrery-guest.h"

int main(int argc, char *argv[]) {
        const char *name = argc > 0 && argv[0] ? argv[0] : "";
        const char *slash = strrchr(name, '/');

        if (slash)
                name = slash + 1;
        if (strcmp(name, "orrery-guest-agent") == 0)
                return agent_main(argc, argv);
        return probe_main(argc, argv);
}
