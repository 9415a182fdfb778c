/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The entry points of the default guest's helpers, which share one static
 * binary (orrery-guest.c picks one by the name it is run as).
 */

/* orrery-guest-probe (probe/): the test helper. */
int probe_main(int argc, char *argv[]);

/* orrery-guest-agent (agent/): the QGA guest agent. */
int agent_main(int argc, char *argv[]);
