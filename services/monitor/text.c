/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "text.h"

const char *printable(const char *s) {
        static char *ring[8];
        static size_t next;
        char *c;

        if (!s)
                return "";
        c = strdup(s);
        if (!c)
                return "?";
        for (char *p = c; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        free(ring[next]);
        ring[next] = c;
        next = (next + 1) % ELEMENTSOF(ring);
        return c;
}

size_t text_strip_terminal(char *buf, size_t size) {
        enum { TEXT, ESCAPE, CSI, OSC, OSC_ESCAPE } state = TEXT;
        size_t n = 0;

        for (size_t i = 0; i < size; i++) {
                unsigned char c = (unsigned char) buf[i];

                switch (state) {
                case TEXT:
                        if (c == 0x1b)
                                state = ESCAPE;
                        else if (c >= 0x20 ? c != 0x7f : c == '\n' || c == '\t')
                                buf[n++] = (char) c;
                        break;
                case ESCAPE:
                        state = c == '[' ? CSI : c == ']' ? OSC : TEXT;
                        break;
                case CSI:
                        if (c >= 0x40 && c <= 0x7e)
                                state = TEXT;
                        break;
                case OSC:
                        if (c == 0x07)
                                state = TEXT;
                        else if (c == 0x1b)
                                state = OSC_ESCAPE;
                        break;
                case OSC_ESCAPE:
                        state = c == '\\' ? TEXT : OSC;
                        break;
                }
        }
        return n;
}
