/* SPDX-License-Identifier: MIT */
/* orrery-guest-agent built for the build machine, for its protocol test (see meson.build). */

#include "orrery-guest.h"

int main(int argc, char *argv[]) {
        return agent_main(argc, argv);
}
