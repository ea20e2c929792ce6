from gardend.cli import main

main()
