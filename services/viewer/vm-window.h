/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The window of one VM: its screen, a header bar that follows the VM's
 * Machine1 State with Pause/Resume, Reset and Power down, and the VM's
 * keyboard and pointer. When the VM goes away the window says so and waits
 * for it to come back; closing the window never touches the VM.
 */

#include "viewer.h"

VmWindow *vm_window_new(Viewer *v, const char *name);
void vm_window_present(VmWindow *w);
/* Something the window cannot recover from (the bus connection is gone): shown instead of the VM. */
void vm_window_set_error(VmWindow *w, const char *text);
