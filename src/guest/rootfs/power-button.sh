#!/bin/sh
# ACPI power button (e.g. QMP system_powerdown): clean poweroff through busybox init.
exec /sbin/poweroff
