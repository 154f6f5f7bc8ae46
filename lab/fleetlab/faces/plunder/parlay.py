"""parlay, plunder's remote-command runner: ``POST /parlay`` runs a treasure map of actions on
the deployments' hosts through the lab's driver, and its JSON logs."""

import json
import logging
import threading
import time


from ...util import read_body, rfc3339nano
from .wire import echo_output, Refusal


class ParlayMixin:
    """The parlay endpoints and runner of :class:`PlunderFace`."""

    # -- parlay ----------------------------------------------------------------------------
    def h_parlay_post(self, request):
        raw = read_body(request)
        try:
            tmap = json.loads(raw)
            if not isinstance(tmap, dict):
                raise ValueError("json: cannot unmarshal into Go value of type parlaytypes.TreasureMap")
            deployments = tmap.get("deployments") or []
            if not isinstance(deployments, list) or not all(isinstance(d, dict) for d in deployments):
                raise ValueError("json: cannot unmarshal deployments")
            for d in deployments:
                if not isinstance(d.get("hosts") or [], list) or not isinstance(d.get("actions") or [], list):
                    raise ValueError("json: cannot unmarshal hosts/actions")
                if not all(isinstance(a, dict) for a in d.get("actions") or []):
                    raise ValueError("json: cannot unmarshal actions")
        except (ValueError, RecursionError) as exc:
            raise Refusal("Error parsing the parlay actions", str(exc))
        leases = self._plunder_leases()
        if not leases:
            raise Refusal("Error importing the hosts from deployment", "No deployment configurations found")
        addresses = {}
        for m in leases:
            if m["address"]:
                addresses[m["address"]] = m["id"]
        if not deployments:
            raise Refusal("Error performing the parlay actions", "No Deployments in parlay map")
        for d in deployments:
            for host in d.get("hosts") or []:
                if host not in addresses:
                    raise Refusal("Error performing the parlay actions", "Host [%s] has no SSH credentials" % host)
        with self._log_lock:
            self.logs_enabled = True
        t = threading.Thread(target=self._run_map, args=(deployments, addresses), daemon=True,
                             name="parlay")
        t.start()
        return {}

    def _log(self, ip, task, output, error, state=None):
        with self._log_lock:
            log = self.logs.get(ip)
            if log is None:
                log = self.logs[ip] = {"state": "Running", "entries": []}
            if task is not None:
                log["entries"].append({"created": rfc3339nano(time.time()), "task": task, "error": error or "",
                                       "entry": output if output else "[No Output]"})
            if state:
                log["state"] = state

    def _set_running(self, ip):
        with self._log_lock:
            if ip in self.logs:
                self.logs[ip]["state"] = "Running"

    def _run_map(self, deployments, addresses):
        try:
            self._run_deployments(deployments, addresses)
        finally:
            self.pool.close()  # this thread's connection

    def _run_host_thread(self, d, ip, machine_id, parallel):
        try:
            self._run_host(d, ip, machine_id, parallel)
        finally:
            self.pool.close()

    def _run_deployments(self, deployments, addresses):
        for d in deployments:
            parallel = bool(d.get("parallel"))
            hosts = d.get("hosts") or []
            if parallel:
                threads = [threading.Thread(target=self._run_host_thread, args=(d, h, addresses[h], True), daemon=True)
                           for h in hosts]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            else:
                for h in hosts:
                    self._run_host(d, h, addresses[h], False)

    def _run_host(self, d, ip, machine_id, parallel):
        self._set_running(ip)
        for action in d.get("actions") or []:
            name = action.get("name", "")
            atype = action.get("type", "")
            try:
                ok, output, error = self._run_action(action, machine_id)
            except Exception as exc:  # the driver failed: the action fails, the run goes on as plunder's
                logging.getLogger("fleetlab").exception("parlay action %r on %s", name, ip)
                ok, output, error = False, "", str(exc)
            if atype in ("upload", "download") and ok and not parallel:
                continue
            if atype in ("pkg", "key"):
                continue
            self._log(ip, name, output, error)
            if not ok and not action.get("ignoreFail"):
                if not parallel:
                    self._log(ip, None, None, None, state="Failed")
                return
        if not parallel:  # plunder never completes parallel runs
            self._log(ip, None, None, None, state="Completed")

    def _run_action(self, action, machine_id):
        atype = action.get("type", "")
        m = self.pool.get(machine_id)
        if m is None:
            return False, "", "machine vanished"
        if atype in ("pkg", "key"):
            return True, "", ""
        if atype in ("upload", "download"):
            if not self.driver.reachable(m):
                return False, "", "dial tcp %s:22: i/o timeout" % m["address"]
            return True, "", ""
        if atype != "command":
            return False, "", "Unknown action type [%s]" % atype
        if action.get("commandLocal") or action.get("commandPipeFile"):
            return False, "", "the lab does not run commands on the plunder host (commandLocal/commandPipeFile)"
        if action.get("keyName"):
            command = self.keys.get(action["keyName"], "")
        else:
            command = action.get("command") or ""
        if action.get("commandSudo"):
            command = "sudo -n -u %s %s" % (action["commandSudo"], command)
        stdin = None
        if action.get("commandPipeCmd"):
            stdin = echo_output(action["commandPipeCmd"])
            if stdin is None:
                return False, "", "the lab pipes only echo commands (commandPipeCmd %r)" % action["commandPipeCmd"]
        timeout = action.get("timeout") or 0
        timeout = 365 * 86400 if not timeout else float(timeout)
        ok, output, error = self.driver.run_command(m, command, timeout=timeout, stdin=stdin)
        output = (output or "").rstrip("\r\n")
        if ok and action.get("commandSaveAsKey"):
            self.keys[action["commandSaveAsKey"]] = output
        return ok, output, error

    def h_parlayLog_get(self, request, id):
        ip = id.replace("-", ".")
        with self._log_lock:
            if not self.logs_enabled:
                raise Refusal("Error reading Parlay Logs", "JSON Logging hasn't been enabled")
            log = self.logs.get(ip)
            if log is None:
                raise Refusal("Error reading Parlay Logs", "No Logs for Target [%s] exist" % ip)
            return {"payload": {"state": log["state"], "entries": list(log["entries"])}}

    def h_parlayLog_delete(self, request, id):
        ip = id.replace("-", ".")
        with self._log_lock:
            if not self.logs_enabled:
                return {}
            if self.logs.pop(ip, None) is None:
                raise Refusal("Error reading deleting logs",
                            "In-Memory logging for [%s] either doesn't exist or has already been deleted" % ip)
        return {}

