#!/bin/sh
# Install the mounted callflow config into /etc/asterisk, with the credentials
# from the environment (never a default password), then run Asterisk.
set -eu
: "${CALLFLOW_ARI_PASSWORD:?set CALLFLOW_ARI_PASSWORD (e.g. in .env)}"
: "${CALLFLOW_SIP_PASSWORD:?set CALLFLOW_SIP_PASSWORD (e.g. in .env)}"
ARI_USER="${CALLFLOW_ARI_USER:-callflow}"
rm -rf /etc/asterisk && mkdir -p /etc/asterisk/dialplans
# The same placeholders as `callflow pbx up` fills for its instance 0 (callflow/pbx/sandbox.py).
fill() {
  sed -e "s|@ARI_USER@|$ARI_USER|g" -e "s|@ARI_PASSWORD@|$CALLFLOW_ARI_PASSWORD|g" \
      -e "s|@SIP_PASSWORD@|$CALLFLOW_SIP_PASSWORD|g" -e "s|@ADDR@|127.0.0.1|g" \
      -e "s|@RTP_START@|10000|g" -e "s|@RTP_END@|20000|g" \
      -e "s|@ETC_DIR@|/etc/asterisk|g" -e "s|@LIB_DIR@|/var/lib/asterisk|g" -e "s|@LOG_DIR@|/var/log/asterisk|g" \
      -e "s|@SPOOL_DIR@|/var/spool/asterisk|g" -e "s|@RUN_DIR@|/run/asterisk|g" -e "s|@CACHE_DIR@|/var/cache/asterisk|g" "$1"
}
for f in /callflow/asterisk/etc/*.conf; do fill "$f" > "/etc/asterisk/$(basename "$f")"; done
for f in /callflow/dialplans/*.conf; do fill "$f" > "/etc/asterisk/dialplans/$(basename "$f")"; done
chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/log/asterisk /var/spool/asterisk /run/asterisk
exec asterisk -f -U asterisk -G asterisk -n
