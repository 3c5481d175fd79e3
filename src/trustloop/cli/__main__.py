from trustloop.cli import main

main()
