from mutualaid.runtime.main import run

from .app import build_app
from .settings import MembershipSettings


def main() -> None:
    run("membership", MembershipSettings, build_app)


if __name__ == "__main__":
    main()
