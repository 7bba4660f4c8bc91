# Jupyter server settings colo gives a JupyterLab datalab (written to the lab's private home and
# passed with --config). Requests reach this server only through colo's proxy, which checked the
# caller (owner, share, admin) and adds the lab's secret in X-Colo-Lab-Secret; the secret is in
# this process's environment only, never in the page (JupyterLab's page config carries a token
# when one is set, so none is set), so users never see it.
import hmac
import os

from jupyter_server.auth.identity import IdentityProvider, User


class ColoProxyIdentity(IdentityProvider):
    def get_user(self, handler):
        secret = os.environ.get("COLO_LAB_SECRET", "")
        sent = handler.request.headers.get("X-Colo-Lab-Secret", "")
        if secret and hmac.compare_digest(sent.encode(), secret.encode()):
            # Like a token login: the proxy is the only way in, and colo's own session cookie is
            # SameSite=Strict, so Jupyter's XSRF and origin checks have nothing left to add.
            handler._token_authenticated = True
            return User(username=os.environ.get("USER", "user"))
        return None

    @property
    def auth_enabled(self):
        return True


c.ServerApp.identity_provider_class = ColoProxyIdentity  # noqa: F821
c.IdentityProvider.token = ""  # noqa: F821
