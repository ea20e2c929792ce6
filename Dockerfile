# gardend with its own containerd. Containers need a privileged host container:
#   docker build -t gardend . && docker run --privileged -p 7777:7777 gardend
FROM debian:bookworm
COPY . /opt/gardend
WORKDIR /opt/gardend
RUN sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
 && scripts/setup.sh \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 7777
ENTRYPOINT [".venv/bin/gardend", "--bind-ip", "0.0.0.0"]
