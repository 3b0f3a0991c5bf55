#!/bin/sh
# Install the mounted callflow config into /etc/asterisk, with the credentials
# from the environment (never a default password), then run Asterisk.
set -eu
: "${CALLFLOW_ARI_PASSWORD:?set CALLFLOW_ARI_PASSWORD (e.g. in .env)}"
: "${CALLFLOW_SIP_PASSWORD:?set CALLFLOW_SIP_PASSWORD (e.g. in .env)}"
ARI_USER="${CALLFLOW_ARI_USER:-callflow}"
rm -rf /etc/asterisk && mkdir -p /etc/asterisk/dialplans
for f in /callflow/asterisk/etc/*.conf; do
  sed -e "s|@ARI_USER@|$ARI_USER|g" -e "s|@ARI_PASSWORD@|$CALLFLOW_ARI_PASSWORD|g" \
      -e "s|@SIP_PASSWORD@|$CALLFLOW_SIP_PASSWORD|g" "$f" > "/etc/asterisk/$(basename "$f")"
done
cp /callflow/dialplans/*.conf /etc/asterisk/dialplans/
chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/log/asterisk /var/spool/asterisk /run/asterisk
exec asterisk -f -U asterisk -G asterisk -n
