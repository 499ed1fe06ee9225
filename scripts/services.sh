#!/usr/bin/env bash
# Installs what the service tests need when missing (Debian, as root). Placeholder: extended by ops.
exit 0
