"""``python -m trustloop.agent``: the agent runtime on ``TRUSTLOOP_RUNTIME_URL``."""

from trustloop.agent.runtime import main

if __name__ == "__main__":
    main()
