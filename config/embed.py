#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn config/default.yaml into a C file defining lw_config_default_text().

The default configuration is compiled into the daemon so that `lowat` with no -c runs exactly
what default.yaml says; generating the string at build time keeps one copy of it, and meson
reruns this whenever default.yaml changes. Every byte outside printable ASCII is written as a
three-digit octal escape, which cannot run into the character that follows (a hex escape can).
"""
import sys


def c_literal_lines(data):
    for line in data.splitlines(keepends=True):
        out = []
        for b in line:
            c = chr(b)
            if c in '\\"?':
                # '?' too: "??" followed by some characters is a trigraph in strict C modes.
                out.append('\\' + c)
            elif c == '\n':
                out.append('\\n')
            elif 0x20 <= b < 0x7f:
                out.append(c)
            else:
                out.append('\\%03o' % b)
        yield '    "' + ''.join(out) + '"\n'


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: embed.py default.yaml out.c')
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, 'rb') as f:
        data = f.read()
    body = ''.join(c_literal_lines(data)) or '    ""\n'
    text = (
        '/* SPDX-License-Identifier: MIT */\n'
        '/* Generated from config/default.yaml by config/embed.py at build time: do not edit. */\n'
        '#include "config/config.h"\n'
        '\n'
        'static const char default_text[] =\n'
        + body
        + '    ;\n'
        '\n'
        'const char *lw_config_default_text(void)\n'
        '{\n'
        '    return default_text;\n'
        '}\n'
    )
    with open(dst, 'w', encoding='ascii', newline='\n') as f:
        f.write(text)


if __name__ == '__main__':
    main()
