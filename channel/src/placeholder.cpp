// placeholder until the channel layer lands
