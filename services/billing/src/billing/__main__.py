from mutualaid.runtime.main import run

from .app import build_app
from .settings import BillingSettings


def main() -> None:
    run("billing", BillingSettings, build_app)


if __name__ == "__main__":
    main()
