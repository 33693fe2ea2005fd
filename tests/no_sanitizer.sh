#!/bin/sh
# tests/no_sanitizer.sh SETUP SANITIZER OPTION - the exe_wrapper of a sanitizer test
# setup (meson test --setup=asan / tsan) in a build configured without that
# sanitizer: instead of running the tests unsanitized under the setup's name, every
# test fails with this line. The top-level meson.build installs it as the wrapper.
echo "bufshim: meson test --setup=$1: this build has no $2: configure it with -Db_sanitize=$3 (tools/test does, in build-$1/)" >&2
exit 1
